import ArgumentParser
import Config
import Core
import Foundation
import Jobs
import State

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Restore a backup into a scratch database and prove it exact: row counts of every table, SQL checks, globals.",
        discussion: """
        Runs a verify unit now, in this process (under its lock, recorded in the history). BACKUP is a
        backup id (or a unique prefix of one) or `latest`; without it, the newest backup that has no
        verification record. The scratch database (cairn_verify_<job>_<backup id>) is always dropped.
        The result is written next to the backup (<id>.verify.json) and shown by `cairn backups list`.
        Examples:
          cairn verify
          cairn verify latest --job marketplace-db
          cairn verify 20261127T023000Z-1a2b3c4d --job marketplace-verify
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ConfigOptions
    @Argument(help: "Backup id, id prefix, or `latest` (default: the newest backup not yet verified).") var backup: String?
    @Option(help: "Verify unit, or a backup job that exactly one verify unit verifies (default: the only verify unit).") var job: String?

    func run() async throws {
        try global.bootstrap()
        try await reportingErrors {
            let config = try options.load()
            var unit = try VerifyUnitChoice.choose(job, in: config)
            guard case .verify(var spec) = unit.spec else { throw CairnError(.internal, "verify unit \(unit.name) has no [verify]") }
            spec.backupID = backup
            unit.spec = .verify(spec)
            let since = Date().addingTimeInterval(-1)
            do {
                try await LocalJobRun(config: config).run(unit)
            } catch {
                printRecord(config: config, unit: unit.name, since: since)
                throw error
            }
            printRecord(config: config, unit: unit.name, since: since)
        }
    }

    /// The row-count table and checks of the verification this command made, from the state database.
    func printRecord(config: CairnConfig, unit: String, since: Date) {
        guard let state = try? StateStore(stateDir: config.stateDir),
              let row = try? state.verifications(verifyJob: unit, limit: 1).first, row.verifiedAt >= since,
              let record = try? VerifyRecord.decode(row.record) else { return }
        print(VerifyRecordText(record: record).lines.joined(separator: "\n"))
    }
}
