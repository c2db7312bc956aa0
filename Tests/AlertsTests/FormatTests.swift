import Foundation
import Testing
import Crypto
@testable import Alerts

@Suite struct WebhookSignatures {
    @Test func matchesRFC4231TestCase2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let sig = WebhookSignature.sign(body: Data("what do ya want for nothing?".utf8), key: WebhookSignature.key(fromSecret: "Jefe"))
        #expect(sig == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func theKeyIsTheSecretWithoutSurroundingWhitespace() {
        #expect(WebhookSignature.key(fromSecret: " \tJefe\r\n") == Data("Jefe".utf8))
        #expect(WebhookSignature.key(fromSecret: "a b") == Data("a b".utf8))
    }

    @Test func theBodyCarriesTheTimestampAndEveryField() throws {
        let t = Date(timeIntervalSince1970: 1_796_457_600)
        let m = AlertMessage(event: .recovered, job: "db", host: "h", what: "ok again", since: t, time: t)
        let body = WebhookChannel.body(m, timestamp: 1_796_457_601)
        let j = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(j["timestamp"] as? Int == 1_796_457_601)
        #expect(j["event"] as? String == "recovered")
        #expect(j["since"] as? String == "2026-12-05T08:00:00Z")
        #expect(j["last_success"] is NSNull)
        #expect(j["run"] is NSNull)
        #expect(j["command"] as? String == "cairn history db")
    }
}

@Suite struct SentryDSNs {
    @Test func parsesKeyHostAndProject() throws {
        let d = try #require(SentryDSN("https://abc123@o42.ingest.sentry.io/4501234\n"))
        #expect(d.publicKey == "abc123")
        #expect(d.secretKey == nil)
        #expect(d.storeURL == "https://o42.ingest.sentry.io/api/4501234/store/")
        #expect(d.authHeader(client: "cairn/1") == "Sentry sentry_version=7, sentry_client=cairn/1, sentry_key=abc123")
    }

    @Test func keepsPortPathPrefixAndLegacySecret() throws {
        let d = try #require(SentryDSN("http://pub:sec@127.0.0.1:9000/sentry/7"))
        #expect(d.storeURL == "http://127.0.0.1:9000/sentry/api/7/store/")
        #expect(d.authHeader(client: "c").hasSuffix("sentry_key=pub, sentry_secret=sec"))
    }

    @Test func refusesWhatIsNotADSN() {
        #expect(SentryDSN("https://o42.ingest.sentry.io/1") == nil)        // no key
        #expect(SentryDSN("https://k@o42.ingest.sentry.io/") == nil)       // no project
        #expect(SentryDSN("https://k@o42.ingest.sentry.io/abc") == nil)    // project not numeric
        #expect(SentryDSN("ftp://k@host/1") == nil)
    }
}

@Suite struct MailMessages {
    @Test func dateIsRFC5322InEnglishAndUTC() {
        #expect(MailMessage.rfc5322Date(Date(timeIntervalSince1970: 1_796_457_600)) == "Sat, 05 Dec 2026 08:00:00 +0000")
        #expect(MailMessage.rfc5322Date(Date(timeIntervalSince1970: 0)) == "Thu, 01 Jan 1970 00:00:00 +0000")
        #expect(MailMessage.rfc5322Date(Date(timeIntervalSince1970: 951_782_400 + 3_661)) == "Tue, 29 Feb 2000 01:01:01 +0000")
    }

    @Test func headersAndBodyUseCRLFAndSevenBitForASCII() {
        let m = MailMessage(from: "a@x.org", to: ["b@y.org", "c@z.org"], subject: "[cairn] FAILED db", body: "line\nline2\n",
                            date: Date(timeIntervalSince1970: 0), messageID: "abc@x.org")
        let text = String(decoding: m.rendered(), as: UTF8.self)
        #expect(text == """
        Date: Thu, 01 Jan 1970 00:00:00 +0000\r
        From: a@x.org\r
        To: b@y.org, c@z.org\r
        Subject: [cairn] FAILED db\r
        Message-ID: <abc@x.org>\r
        MIME-Version: 1.0\r
        Content-Type: text/plain; charset=utf-8\r
        Content-Transfer-Encoding: 7bit\r
        \r
        line\r
        line2\r

        """)
    }

    @Test func nonASCIISubjectsAreEncodedWordsAndBodiesBase64() {
        let m = MailMessage(from: "a@x.org", to: ["b@y.org"], subject: "échec\r\nBcc: evil@x", body: "café",
                            date: Date(timeIntervalSince1970: 0), messageID: "i@x")
        let text = String(decoding: m.rendered(), as: UTF8.self)
        #expect(text.contains("Subject: =?utf-8?B?\(Data("échec  Bcc: evil@x".utf8).base64EncodedString())?=\r\n"))
        #expect(!text.contains("\r\nBcc:"))
        #expect(text.contains("Content-Transfer-Encoding: base64\r\n\r\n\(Data("café".utf8).base64EncodedString())\r\n"))
    }
}

@Suite struct DeliveryClassification {
    @Test func serverErrorsAndRateLimitsAreRetryableOtherClientErrorsAreNot() {
        #expect(DeliveryResult.isRetryable(status: 500))
        #expect(DeliveryResult.isRetryable(status: 503))
        #expect(DeliveryResult.isRetryable(status: 429))
        #expect(!DeliveryResult.isRetryable(status: 400))
        #expect(!DeliveryResult.isRetryable(status: 401))
        #expect(!DeliveryResult.isRetryable(status: 404))
    }

    @Test func excerptsAreOneShortLine() {
        let e = DeliveryResult.excerpt(Data(("a\nb\r\n" + String(repeating: "x", count: 500)).utf8))
        #expect(e.hasPrefix("a b xxx"))
        #expect(e.count == 203)
    }
}
