import ArgumentParser
import Core
import Foundation
import Jobs
import ObjectStore

struct StorageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Check and inspect object storage.",
        subcommands: [Check.self, List.self, Put.self, Get.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write, read back, list and delete a probe object; report each step.",
            discussion: "STORAGE is s3://BUCKET/PREFIX[?endpoint=…&region=…&path_style=true], file:///PATH, or the name of a storage in cairn.toml (its URL and credentials).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Storage URL or name from cairn.toml.") var url: String

        func run() async throws {
            try global.bootstrap()
            try await reportingErrors {
                let store = try StorageArgument(url).store(options: options)
                print("checking \(store.displayName)")
                let steps = await StorageCheck(store: store).run { s in
                    let status = s.ok ? "ok  " : "FAIL"
                    print("  \(status) \(s.name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(String(format: "%7.1f ms", s.milliseconds))  \(s.detail)")
                }
                let failed = steps.filter { !$0.ok }
                if failed.isEmpty {
                    print("storage OK: every operation Cairn needs works")
                } else {
                    throw CairnError(.storage, "storage check failed at: \(failed.map(\.name).joined(separator: ", "))")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List objects under a storage URL, or a storage of cairn.toml (NAME or NAME/PREFIX).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Storage URL, or NAME[/PREFIX] of a storage in cairn.toml.") var url: String
        @Flag(name: .shortAndLong, help: "Show size, time and ETag.") var long = false
        @Flag(help: "Also list unfinished multipart uploads.") var uploads = false

        func run() async throws {
            try global.bootstrap()
            try await reportingErrors {
                let arg = StorageArgument(url)
                let store = try arg.store(options: options)
                let objects = try await store.list(prefix: arg.path)
                var total: Int64 = 0
                for o in objects {
                    total += o.size
                    if long {
                        let when = o.lastModified.map { ISO8601DateFormatter().string(from: $0) } ?? "-"
                        print("\(String(o.size).leftPad(14))  \(when)  \(o.key)")
                    } else {
                        print(o.key)
                    }
                }
                if long { print("\(objects.count) object(s), \(total) bytes") }
                if uploads {
                    for u in try await store.listMultipartUploads(prefix: arg.path) {
                        let when = u.initiated.map { ISO8601DateFormatter().string(from: $0) } ?? "-"
                        print("upload \(u.uploadId)  \(when)  \(u.key)")
                    }
                }
            }
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a local file (multipart with equal parts above the part size).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Local file, or - for standard input.") var file: String
        @Argument(help: "Object URL: s3://BUCKET/KEY, file:///PATH, or NAME/KEY in a storage of cairn.toml.") var url: String
        @Option(help: "Part size in MiB (≥ 5).") var partSizeMib: Int = 16
        @Option(help: "Parts uploaded at once.") var concurrency: Int = 4

        func validate() throws {
            if partSizeMib < 5 { throw ValidationError("--part-size-mib must be at least 5") }
            if concurrency < 1 || concurrency > 64 { throw ValidationError("--concurrency must be between 1 and 64") }
        }

        func run() async throws {
            try global.bootstrap()
            try await reportingErrors {
                let (store, key) = try StorageArgument(url).object(options: options)
                let start = ContinuousClock.now
                let uploader = MultipartUploader(store: store, partSize: partSizeMib << 20, concurrency: concurrency)
                // A regular file is sent from disk part by part (memory independent of the
                // part size and concurrency); standard input and pipes are streamed.
                var st = stat()
                let result: MultipartUploader.Result
                if file != "-", stat(file, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG {
                    result = try await uploader.upload(key: key, file: file, size: Int64(st.st_size))
                } else {
                let input = ByteChannel(capacity: 4 << 20)
                let reader = FileReader(path: file)
                result = try await withThrowingTaskGroup(of: MultipartUploader.Result?.self) { group in
                    group.addTask { try await reader.pump(into: input); return nil }
                    group.addTask { try await uploader.upload(key: key, from: input) }
                    var r: MultipartUploader.Result?
                    do {
                        for try await x in group { if let x { r = x } }
                    } catch {
                        input.cancel(error)
                        throw error
                    }
                    return r!
                }
                }
                let secs = StorageCheck.ms(since: start) / 1000
                print("uploaded \(ByteFormat.human(result.size)) (\(result.size) bytes) in \(result.partCount) part(s) to \(url) in \(String(format: "%.2f", secs)) s (\(ProgressLine.rate(bytes: result.size, seconds: secs)))")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download an object to a local file or standard output.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Object URL: s3://BUCKET/KEY, file:///PATH, or NAME/KEY in a storage of cairn.toml.") var url: String
        @Argument(help: "Local file, or - for standard output.") var file: String = "-"

        func run() async throws {
            try global.bootstrap()
            try await reportingErrors {
                let (store, key) = try StorageArgument(url).object(options: options)
                let start = ContinuousClock.now
                let dl = try await store.get(key: key, range: nil)
                try await FileWriter(path: file).drain(dl.body)
                let secs = StorageCheck.ms(since: start) / 1000
                let summary = "downloaded \(ByteFormat.human(dl.info.size)) (\(dl.info.size) bytes) from \(url) in \(String(format: "%.2f", secs)) s (\(ProgressLine.rate(bytes: dl.info.size, seconds: secs)))"
                // Standard output carries the object itself with "-": the summary goes to stderr then.
                if file == "-" { FileHandle.standardError.write(Data((summary + "\n").utf8)) } else { print(summary + " to \(file)") }
            }
        }
    }
}

/// A storage on the command line: a URL (`s3://…`, `file:///…`) or the name
/// of a storage in cairn.toml, optionally followed by `/KEY` or `/PREFIX`
/// below it (opened with the storage's URL and credentials).
struct StorageArgument {
    let text: String
    init(_ text: String) { self.text = text }

    var isURL: Bool { text.contains("://") || text.hasPrefix("/") }
    /// For a name: the storage's name and what follows it.
    var name: String { String(text.prefix(while: { $0 != "/" })) }
    /// The key or prefix below a named storage ("" for a URL: it is part of the URL).
    var path: String { isURL ? "" : String(text.dropFirst(name.count + 1)) }

    func store(options: ConfigOptions) throws -> any ObjectStore {
        if isURL { return try StorageLocation.open(text) }
        return try Resources.store(try Resources.storage(named: name, in: try options.load()))
    }

    /// The store and key of one object.
    func object(options: ConfigOptions) throws -> (any ObjectStore, String) {
        if isURL { return try StorageLocation.openObject(text) }
        guard !path.isEmpty, !path.hasSuffix("/") else {
            throw CairnError(.usage, "\(text): expected NAME/KEY naming an object in storage '\(name)'")
        }
        return (try store(options: options), path)
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
