import Alerts
import Config
import Foundation
import State

/// Builds the alert center from the configuration: nil when no channel is configured.
public enum AlertSetup {
    public static func center(_ config: CairnConfig, state: StateStore, env: [String: String]) throws -> AlertCenter? {
        // The typed [alerts.NAME] channels arrive with the channel senders; until then no center.
        nil
    }
}
