import Alerts
import ArgumentParser
import Config
import Core
import Foundation

/// `cairn alert …`: the alert channels of cairn.toml.
struct AlertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alert",
        abstract: "Alert channels.",
        subcommands: [Test.self, AlertStatusCommand.self]
    )

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a test message through an alert channel and print the receiver's answer.",
            discussion: """
            CHANNEL is the NAME of an [alerts.NAME] table in cairn.toml. The message is sent once, \
            without retries; the exit status is 0 only when the receiver accepted it. A ping channel \
            gets a log ping (healthchecks' /log: it changes no check's state) or, for Uptime Kuma, an up push.
            """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Channel name from [alerts.NAME].") var channel: String

        func run() async throws {
            try global.bootstrap()
            try await reportingErrors {
                let config = try options.load()
                guard let c = config.alerts.channels[channel] else {
                    let known = config.alerts.channels.keys.sorted()
                    throw CairnError(.notFound, "no alert channel '\(channel)' in \(config.path) (channels: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
                }
                let sender = AlertChannels.make(c)
                let message = AlertMessage.test(channel: channel, host: ProcessInfo.processInfo.hostName, time: Date())
                let result = await sender.send(message)
                var line = "\(channel) (\(sender.typeName)): " + (result.delivered ? "delivered" : "FAILED")
                if let s = result.status { line += ", status \(s)" }
                if let code = result.curlCode { line += ", curl code \(code)" }
                if !result.bodyExcerpt.isEmpty { line += ": \(result.bodyExcerpt)" }
                print(line)
                guard result.delivered else {
                    throw CairnError(result.retryable ? .network : .config,
                                     "alert channel '\(channel)': \(result.error ?? "not delivered")" + (result.retryable ? " (a retry may succeed)" : ""))
                }
            }
        }
    }
}
