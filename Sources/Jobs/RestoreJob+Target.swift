import Core
import Foundation
import Pipeline
import Postgres

/// The parts of a restore around pg_restore: what the target holds, the
/// globals, a file written whole or not at all, and errors that say why.
extension RestoreJob {
    func note(_ text: String) {
        if let n = options.note { n(text) } else { logger.info("restore", metadata: ["note": "\(text)"]) }
    }

    /// The target server's roles. With `mustBeEmpty`, refuses a database that
    /// already holds objects (a table, view, sequence, function, type or
    /// schema outside the system schemas and not part of an extension).
    func inspectTarget(_ conninfo: String, mustBeEmpty: Bool) async throws -> Set<String> {
        let conn = try await PGConnection.connect(conninfo)
        do {
            if mustBeEmpty {
                let objects = try await conn.query(Self.userObjectsQuery).compactMap { $0.first ?? nil }
                if !objects.isEmpty {
                    let db = try await conn.currentDatabase()
                    let shown = objects.prefix(3).joined(separator: ", ") + (objects.count > 3 ? ", …" : "")
                    throw CairnError(.usage, "database \(db) is not empty (it has \(shown)): restore with --clean to replace the backup's objects in it, or into a new database with --create")
                }
            }
            let roles = try await conn.query("SELECT rolname FROM pg_catalog.pg_roles").compactMap { $0.first ?? nil }
            await conn.close()
            return Set(roles)
        } catch {
            await conn.close()
            throw error
        }
    }

    /// Up to four objects outside the system schemas, not members of an extension.
    static let userObjectsQuery = """
        WITH ext AS (SELECT classid, objid FROM pg_catalog.pg_depend WHERE deptype = 'e'),
        sys AS (SELECT oid FROM pg_catalog.pg_namespace
                WHERE nspname IN ('pg_catalog', 'information_schema') OR nspname LIKE 'pg\\_toast%' OR nspname LIKE 'pg\\_temp\\_%')
        (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relnamespace NOT IN (SELECT oid FROM sys) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
           AND (c.tableoid, c.oid) NOT IN (SELECT classid, objid FROM ext) ORDER BY 1 LIMIT 4)
        UNION ALL
        (SELECT format('function %I.%I', n.nspname, p.proname) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE p.pronamespace NOT IN (SELECT oid FROM sys) AND (p.tableoid, p.oid) NOT IN (SELECT classid, objid FROM ext) ORDER BY 1 LIMIT 4)
        UNION ALL
        (SELECT format('type %I.%I', n.nspname, t.typname) FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
         WHERE t.typnamespace NOT IN (SELECT oid FROM sys) AND t.typrelid = 0 AND t.typcategory <> 'A'
           AND (t.tableoid, t.oid) NOT IN (SELECT classid, objid FROM ext) ORDER BY 1 LIMIT 4)
        UNION ALL
        (SELECT format('schema %I', n.nspname) FROM pg_catalog.pg_namespace n
         WHERE n.oid NOT IN (SELECT oid FROM sys) AND n.nspname <> 'public'
           AND (n.tableoid, n.oid) NOT IN (SELECT classid, objid FROM ext) ORDER BY 1 LIMIT 4)
        LIMIT 4
        """

    /// The backup's globals script, unless there is none or `--no-globals`.
    func globalsScript() async throws -> GlobalsScript? {
        guard let object = manifest.globals else { return nil }
        guard options.globals != .skip else {
            note("globals: not applied (--no-globals)")
            return nil
        }
        let collected = DataBox()
        _ = try await decrypt(object, into: { ch in
            while let d = try await ch.receive() { collected.append(d) }
        })
        return GlobalsScript(String(decoding: collected.data, as: UTF8.self))
    }

    /// Applies `script` for the roles the archive names (`referenced`, and
    /// the roles linked to them by membership) that the target lacks; roles
    /// that exist are left alone. Decides and says whether to, as `options.globals` asks.
    func applyGlobals(_ script: GlobalsScript, referenced: Set<String>, existing: Set<String>, conninfo: String) async throws {
        let created = Set(script.roles)
        let needed = script.rolesLinked(to: referenced)
        let missing = needed.subtracting(existing)
        let present = needed.intersection(existing).intersection(created)
        if options.globals == .auto && missing.isEmpty {
            note("globals: not applied (the roles the backup names exist on the target: \(Self.names(needed)); --globals to apply)")
            return
        }
        note("globals: applying (\(options.globals == .apply ? "--globals" : "target lacks roles \(Self.names(missing))"))")
        if !present.isEmpty { note("globals: roles already on the target, left alone: \(Self.names(present))") }
        let f = script.filtered(create: missing.intersection(created), existing: existing, withPasswords: options.globalsWithPasswords)
        try await Psql.run(f.sql, conninfo: conninfo)
        var done = "globals: created roles \(f.created.isEmpty ? "(none)" : Self.names(f.created))"
        if !f.memberships.isEmpty { done += "; memberships \(f.memberships.joined(separator: ", "))" }
        if f.strippedPasswords { done += "; passwords not restored (--globals-with-passwords to restore them)" }
        note(done)
        if !f.skippedTablespaces.isEmpty {
            note("globals: tablespaces not created (their directories belong to the old server): \(Self.names(f.skippedTablespaces))")
        }
        let unknown = missing.subtracting(created)
        if !unknown.isEmpty {
            note("globals: roles the backup names that its globals do not define: \(Self.names(unknown)) (create them, or restore with --no-owner --no-privileges)")
        }
    }

    static func names(_ roles: some Collection<String>) -> String {
        let sorted = roles.sorted()
        let shown = sorted.prefix(10).joined(separator: ", ")
        return sorted.count > 10 ? "\(shown) and \(sorted.count - 10) more" : shown
    }

    /// The header and table of contents of an archive file.
    static func readTOC(file: String) async throws -> ArchiveTOC {
        let ch = ByteChannel(capacity: 1 << 20)
        async let pumped: Void = FileReader(path: file).pump(into: ch)
        let toc: ArchiveTOC
        do {
            toc = try await ArchiveTOC.read(from: ch).toc
        } catch {
            ch.cancel(error)
            _ = try? await pumped
            throw error
        }
        ch.cancel()
        _ = try? await pumped
        return toc
    }

    /// pg_restore of `head` followed by the rest of `rest`. When pg_restore
    /// fails, its error is the one thrown: pg_restore reads its own channel,
    /// so the broken pipe it leaves never reaches `rest` and the pipeline
    /// before it, which would otherwise report "exited before reading all of
    /// its input" first.
    static func restore(head: Data, rest: ByteChannel, into conninfo: String, options: PgRestore.Options) async throws {
        let input = ByteChannel(capacity: Pipeline.defaultCapacity)
        let r = try PgRestore(source: .channel(input), target: .database(conninfo), options: options)
        async let forwarded: (any Error)? = {
            do {
                try await input.send(head)
                while let d = try await rest.receive() { try await input.send(d) }
                input.finish()
                return nil
            } catch {
                input.cancel(error)
                return error
            }
        }()
        let restoreError: (any Error)?
        do { try await r.wait(); restoreError = nil } catch { restoreError = error }
        let forwardError = await forwarded
        if let e = restoreError ?? forwardError { throw e }
    }

    /// A child process's failure with advice from its first `ERROR:` line (see `RestoreErrorHint`).
    static func explained(_ error: any Error) -> any Error {
        guard let e = error as? CairnError, e.code == .process, let f = e.cause as? ProcessFailure,
              let line = f.errorLine, let hint = RestoreErrorHint.classify(errorLine: line) else { return error }
        return CairnError(.process, "\(e.message) (\(hint.advice))", cause: f)
    }

    /// Writes the archive to `path` (or standard output for "-") through a
    /// temporary file in the same directory (mode 0600), renamed into place
    /// only once the whole stream has authenticated and matches the manifest:
    /// every failure removes it. An existing file is refused unless `overwriteFile`.
    func restoreToFile(_ path: String) async throws -> Int64 {
        if path == "-" { return try await decrypt(into: { ch in try await FileWriter(path: path, mode: 0o600).drain(ch) }) }
        let overwrite = options.overwriteFile
        try await runBlocking {
            var st = stat()
            if !overwrite && lstat(path, &st) == 0 {
                throw CairnError(.usage, "\(path) already exists: pass --force to replace it")
            }
        }
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).cairn-\(UUID().uuidString.prefix(8))").path
        do {
            let bytes = try await decrypt(into: { ch in try await FileWriter(path: tmp, mode: 0o600).drain(ch) })
            try await runBlocking {
                if overwrite {
                    guard rename(tmp, path) == 0 else { throw CairnError(.io, "cannot rename \(tmp) to \(path): \(errnoString())") }
                } else {
                    // link(2) fails if the name appeared meanwhile: never replace a file without --force.
                    guard link(tmp, path) == 0 else {
                        let e = errno
                        throw CairnError(e == EEXIST ? .usage : .io, e == EEXIST ? "\(path) already exists: pass --force to replace it"
                                         : "cannot create \(path): \(errnoString(e))")
                    }
                    unlink(tmp)
                }
            }
            return bytes
        } catch {
            unlink(tmp)
            throw error
        }
    }
}

/// Bytes gathered by a sink task.
final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var _data = Data()
    func append(_ d: Data) { lock.lock(); _data.append(d); lock.unlock() }
    var data: Data { lock.lock(); defer { lock.unlock() }; return _data }
}
