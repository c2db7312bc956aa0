import Foundation
@testable import Postgres
import Testing

/// `PostgresTools.childEnvironment`: what a pg_dump, pg_dumpall, pg_restore or psql may see.
@Suite struct ChildEnvironmentTests {
    static let parent = [
        "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LANGUAGE": "en", "LC_ALL": "C.UTF-8", "LC_MESSAGES": "C",
        "TZ": "Europe/Berlin", "HOME": "/var/lib/cairn",
        "PGHOST": "db.internal", "PGPORT": "5433", "PGPASSFILE": "/etc/cairn/pgpass", "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": "/etc/ssl/db.pem", "PGSERVICE": "main", "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "cairn",
        "PGTARGETSESSIONATTRS": "read-only", "PGGSSENCMODE": "disable", "KRB5CCNAME": "FILE:/tmp/krb5cc",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret/key", "AWS_SESSION_TOKEN": "token",
        "AWS_PROFILE": "backup", "CREDENTIALS_DIRECTORY": "/run/credentials/cairn.service",
        "NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "30000000", "CAIRN_LOG_LEVEL": "debug",
        "CAIRN_CONFIG": "/etc/cairn/cairn.toml", "LD_PRELOAD": "/tmp/evil.so", "PSQLRC": "/tmp/rc",
        "PG_COLOR": "always", "SSH_AUTH_SOCK": "/tmp/agent",
    ]

    @Test func keepsLocalePathHomeAndLibpqVariablesOnly() {
        let env = PostgresTools.childEnvironment(parent: Self.parent, password: nil)
        #expect(env == [
            "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LANGUAGE": "en", "LC_ALL": "C.UTF-8", "LC_MESSAGES": "C",
            "TZ": "Europe/Berlin", "HOME": "/var/lib/cairn",
            "PGHOST": "db.internal", "PGPORT": "5433", "PGPASSFILE": "/etc/cairn/pgpass", "PGSSLMODE": "verify-full",
            "PGSSLROOTCERT": "/etc/ssl/db.pem", "PGSERVICE": "main", "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "cairn",
            "PGTARGETSESSIONATTRS": "read-only", "PGGSSENCMODE": "disable", "KRB5CCNAME": "FILE:/tmp/krb5cc",
        ])
    }

    @Test func neverPassesCloudCredentialsOrCairnsOwnVariables() {
        let env = PostgresTools.childEnvironment(parent: Self.parent, password: "pw")
        #expect(!env.keys.contains { $0.hasPrefix("AWS_") || $0.hasPrefix("CAIRN_") })
        for name in ["CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "LD_PRELOAD", "PSQLRC", "PG_COLOR", "SSH_AUTH_SOCK"] {
            #expect(env[name] == nil, "\(name) passed")
        }
    }

    @Test func cairnsPasswordReplacesTheOperatorsAndTheOperatorsPassesWithoutOne() {
        var parent = Self.parent
        parent["PGPASSWORD"] = "from-operator"
        #expect(PostgresTools.childEnvironment(parent: parent, password: "from-cairn")["PGPASSWORD"] == "from-cairn")
        #expect(PostgresTools.childEnvironment(parent: parent, password: nil)["PGPASSWORD"] == "from-operator")
        #expect(PostgresTools.childEnvironment(parent: Self.parent, password: nil)["PGPASSWORD"] == nil)
    }

    @Test func emptyParentGivesOnlyThePassword() {
        #expect(PostgresTools.childEnvironment(parent: [:], password: "pw") == ["PGPASSWORD": "pw"])
        #expect(PostgresTools.childEnvironment(parent: [:], password: nil).isEmpty)
    }
}
