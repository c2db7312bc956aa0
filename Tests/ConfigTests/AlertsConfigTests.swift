import Core
import Foundation
import Testing
@testable import Config

@Suite struct AlertChannelsInConfig {
    static let main = """
    [storage.local]
    url = "file:///srv/b"
    [keys]
    active = "k"
    files = { k = "/etc/cairn/k.key" }
    [defaults]
    alerts = ["ops-hook"]

    [alerts]
    remind_every = "6h"

    [alerts.ops-hook]
    type = "webhook"
    url = "https://hooks.example/cairn"
    secret_file = "/etc/cairn/hook-secret"

    [alerts.ops-slack]
    type = "slack"
    url_file = "credential:slack-url"

    [alerts.ops-mail]
    type = "email"
    url = "smtp://smtp.sendgrid.net:587"
    from = "cairn@example.com"
    to = ["ops@example.com", "oncall@example.com"]
    username = "apikey"
    password_file = "secrets/smtp"

    [alerts.ops-sms]
    type = "termii"
    api_key_file = "/etc/cairn/termii"
    from = "Cairn"
    to = ["+233201234567"]
    channel = "dnd"

    [alerts.ops-wa]
    type = "twilio"
    account_sid = "AC0123456789abcdef0123456789abcdef"
    auth_token_file = "/etc/cairn/twilio"
    from = "whatsapp:+14155238886"
    to = ["whatsapp:+233201234567"]

    [alerts.sentry]
    type = "sentry"
    dsn_file = "/etc/cairn/dsn"
    environment = "production"

    [alerts.hc]
    type = "ping"
    url = "https://hc-ping.com/uuid/"

    """

    @Test func everyChannelTypeParsesWithDefaults() throws {
        let f = try ConfigFixture(main: Self.main, jobs: [
            "db": ConfigFixture.backup + "\n",
            "db2": "alerts = [\"ops-sms\", \"hc\"]\nstale_after = \"36h\"\n" + ConfigFixture.backup,
        ])
        let c = try ConfigLoader.load(path: f.configPath)
        #expect(c.alerts.remindEvery == .seconds(6 * 3600))
        #expect(c.alerts.channels.count == 7)
        #expect(c.alerts.channels["ops-slack"]?.kind == .slack(.init(urlFile: "credential:slack-url")))
        #expect(c.alerts.channels["ops-mail"]?.kind == .email(.init(url: "smtp://smtp.sendgrid.net:587", security: .starttls, from: "cairn@example.com",
                                                                   to: ["ops@example.com", "oncall@example.com"], username: "apikey",
                                                                   passwordFile: f.dir + "/secrets/smtp")))
        #expect(c.alerts.channels["ops-sms"]?.kind == .termii(.init(apiURL: "https://api.ng.termii.com", apiKeyFile: "/etc/cairn/termii",
                                                                   from: "Cairn", to: ["+233201234567"], route: .dnd)))
        #expect(c.alerts.channels["ops-wa"]?.kind == .twilio(.init(apiURL: "https://api.twilio.com", accountSID: "AC0123456789abcdef0123456789abcdef",
                                                                  authTokenFile: "/etc/cairn/twilio", from: "whatsapp:+14155238886",
                                                                  to: ["whatsapp:+233201234567"])))
        #expect(c.alerts.channels["sentry"]?.kind == .sentry(.init(dsnFile: "/etc/cairn/dsn", environment: "production")))
        #expect(c.alerts.channels["hc"]?.kind == .ping(.init(url: "https://hc-ping.com/uuid", style: .healthchecks)))
        #expect(c.jobs["db"]?.alerts == ["ops-hook"])          // [defaults] alerts
        #expect(c.jobs["db"]?.staleAfter == nil)
        #expect(c.jobs["db2"]?.alerts == ["ops-sms", "hc"])
        #expect(c.jobs["db2"]?.staleAfter == .seconds(36 * 3600))
        #expect(!c.description.contains("hooks.example"))
    }

    @Test func inlineSecretsAreRefusedWithTheFileKeyToUse() throws {
        let f = try ConfigFixture(main: """
        [alerts.a]
        type = "termii"
        api_key = "TLxxxx"
        from = "Cairn"
        to = ["+233201234567"]

        [alerts.b]
        type = "email"
        url = "smtps://smtp.example.com:465"
        from = "c@example.com"
        to = ["o@example.com"]
        username = "u"
        password = "hunter2"

        [alerts.c]
        type = "slack"
        url = "https://hooks.slack.com/services/T/B/X"
        """)
        let issues = ConfigLoader.check(path: f.configPath)
        #expect(issues.map(\.description) == [
            "\(f.configPath):3: alerts.a.api_key: secrets are not accepted inline; put it in a file (chmod 600) and set api_key_file = \"/path\" (or \"credential:NAME\" under systemd's LoadCredential=)",
            "\(f.configPath):13: alerts.b.password: secrets are not accepted inline; put it in a file (chmod 600) and set password_file = \"/path\" (or \"credential:NAME\" under systemd's LoadCredential=)",
            "\(f.configPath):17: alerts.c.url: secrets are not accepted inline; put it in a file (chmod 600) and set url_file = \"/path\" (or \"credential:NAME\" under systemd's LoadCredential=)",
        ])
        #expect(issues.allSatisfy { $0.kind == .inlineSecret })
        #expect(!issues.map(\.description).joined().contains("hunter2"))
    }

    @Test func fieldsAreCheckedWithFileAndLine() throws {
        let f = try ConfigFixture(main: """
        [alerts]
        remind_every = "soon"

        [alerts.hook]
        type = "webhok"

        [alerts.mail]
        type = "email"
        url = "http://smtp.example.com"
        from = "not an address"
        to = []

        [alerts.wa]
        type = "twilio"
        account_sid = "AC123"
        auth_token_file = "/t"
        from = "+15005550006"
        to = ["whatsapp:+233201234567"]

        [alerts.sms]
        type = "termii"
        api_key_file = "/k"
        from = "Cairn"
        to = ["0201234567x"]
        channel = "sms"
        """, jobs: ["db": "alerts = [\"nope\", \"mail\"]\n" + ConfigFixture.backup,
                    "v": "kind = \"verify\"\nstale_after = \"1d\"\n[verify]\nbackup_job = \"db\"\nscratch_database_url = \"postgres:///x\"\n"])
        let text = ConfigLoader.check(path: f.configPath).map(\.description)
        let p = f.configPath
        #expect(text.contains("\(p):2: alerts.remind_every: expected a duration like \"30m\" or \"2h\", got \"soon\""))
        #expect(text.contains("\(p):5: alerts.hook.type: expected one of \"webhook\", \"slack\", \"email\", \"termii\", \"twilio\", \"sentry\", \"ping\", got \"webhok\""))
        #expect(text.contains("\(p):9: alerts.mail.url: expected \"smtp://HOST:PORT\" (STARTTLS) or \"smtps://HOST:PORT\" without user or path, got \"http://smtp.example.com\""))
        #expect(text.contains("\(p):10: alerts.mail.from: expected one address like \"cairn@example.com\", got \"not an address\""))
        #expect(text.contains("\(p):11: alerts.mail.to: must name at least one address"))
        #expect(text.contains("\(p):15: alerts.wa.account_sid: expected AC followed by 32 hex digits, got \"AC123\""))
        #expect(text.contains("\(p):24: alerts.sms.to: expected international numbers like \"+233201234567\" (or \"whatsapp:+233…\" for Twilio), got \"0201234567x\""))
        #expect(text.contains("\(p):25: alerts.sms.channel: expected one of \"generic\", \"dnd\", \"whatsapp\", got \"sms\""))
        // Channels with errors are still known by name: no second error for a job naming one.
        #expect(text.contains("jobs/db.toml:1: alerts: no alert channel named 'nope' in \(p) (defined: hook, mail, sms, wa)"))
        #expect(!text.contains { $0.contains("named 'mail'") })
        #expect(text.contains("jobs/v.toml:2: stale_after: applies only to backup jobs (the age of the newest backup); this is a verify job"))
    }

    @Test func twilioWhatsAppNeedsWhatsAppOnBothSides() throws {
        let f = try ConfigFixture(main: """
        [alerts.wa]
        type = "twilio"
        account_sid = "AC0123456789abcdef0123456789abcdef"
        auth_token_file = "/t"
        from = "+15005550006"
        to = ["whatsapp:+233201234567"]
        """)
        #expect(ConfigLoader.check(path: f.configPath).map(\.description) == [
            "\(f.configPath):6: alerts.wa.to: a whatsapp: recipient needs a whatsapp: sender in from",
        ])
    }

    @Test func unknownDefaultChannelsAreReported() throws {
        let f = try ConfigFixture(main: "[defaults]\nalerts = [\"ghost\"]\n")
        #expect(ConfigLoader.check(path: f.configPath).map(\.description) == [
            "\(f.configPath):2: defaults.alerts: no alert channel named 'ghost' (defined: none)",
        ])
    }
}
