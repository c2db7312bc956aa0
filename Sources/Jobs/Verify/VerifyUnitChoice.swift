import Config
import Core

/// The verify unit `cairn verify --job J` means: J itself when it is a
/// verify unit; the one verify unit referencing J when J is a backup job;
/// without J, the only verify unit. Pure.
public enum VerifyUnitChoice {
    public static func choose(_ name: String?, in config: CairnConfig) throws -> JobConfig {
        let units = config.sortedJobs.filter { $0.kind == .verify }
        let names = units.map(\.name).joined(separator: ", ")
        guard let name else {
            guard units.count == 1 else {
                throw CairnError(.usage, units.isEmpty ? "no verify units in \(config.jobsDir) (add one with kind = \"verify\")"
                                                       : "several verify units (\(names)): pass --job")
            }
            return units[0]
        }
        if let j = config.jobs[name] {
            switch j.kind {
            case .verify:
                return j
            case .backup:
                let referencing = units.filter { $0.verify?.backupJob == name }
                guard referencing.count == 1 else {
                    throw CairnError(.usage, referencing.isEmpty
                        ? "no verify unit has backup_job = \"\(name)\" (verify units: \(names.isEmpty ? "none" : names))"
                        : "several verify units verify \(name) (\(referencing.map(\.name).joined(separator: ", "))): pass one of them with --job")
                }
                return referencing[0]
            default:
                throw CairnError(.usage, "job \(name) is a \(j.kind.rawValue) job; --job takes a verify unit or a backup job")
            }
        }
        throw CairnError(.notFound, "no job named '\(name)' in \(config.jobsDir) (verify units: \(names.isEmpty ? "none" : names))")
    }
}
