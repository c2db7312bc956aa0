// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "cairn",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "cairn", targets: ["cairn"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
    ],
    targets: [
        // C libraries from Debian, each wrapped once (design.md §4.1).
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // Linux calls Glibc's module lacks (timerfd, SO_PEERCRED, CRC32C, the Swift runtime's global-executor hook).
        .target(name: "CLinux"),

        // Shared bottom layer: error model, blocking-thread executor, bounded byte channels.
        .target(name: "Core", dependencies: ["CLinux", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Crypto", dependencies: ["Core", "COpenSSL"]),
        .target(name: "HTTP", dependencies: ["Core", "CCurl", .product(name: "Logging", package: "swift-log")]),
        .target(name: "ObjectStore", dependencies: ["Core", "HTTP", "Crypto", "CLinux", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Pipeline", dependencies: ["Core", "Crypto", "CZstd", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Postgres", dependencies: ["Core", "CLibPQ", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Config", dependencies: ["Core", "Crypto", "TOMLKit"]),
        .target(name: "Cron", dependencies: []),
        .target(name: "State", dependencies: ["Core", .product(name: "GRDB", package: "GRDB.swift")]),
        // Alert channels (webhook, Slack, SMTP, Termii, Twilio, Sentry, pings), the alert state machine and its queue.
        .target(name: "Alerts", dependencies: ["Core", "HTTP", "Config", "Crypto", "State", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Jobs", dependencies: ["Core", "Crypto", "Config", "Pipeline", "ObjectStore", "Postgres", "State", "HTTP",
                                             .product(name: "Logging", package: "swift-log")]),
        .target(name: "Scheduler", dependencies: ["Core", "CLinux", "Config", "Cron", "Jobs", "State", "Postgres", "Alerts",
                                                  .product(name: "Logging", package: "swift-log")]),
        .executableTarget(name: "cairn", dependencies: [
            "Core", "HTTP", "Crypto", "ObjectStore", "Pipeline", "Postgres", "Config", "Jobs", "Cron", "State", "Scheduler", "Alerts",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .testTarget(name: "CoreTests", dependencies: ["Core"]),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", "Core", "Crypto"], exclude: ["echo_server.py"]),
        .testTarget(name: "CryptoTests", dependencies: ["Crypto", "Core"]),
        .testTarget(name: "ObjectStoreTests", dependencies: ["ObjectStore", "HTTP", "Crypto", "Core"], resources: [.copy("Fixtures")]),
        .testTarget(name: "StateTests", dependencies: ["State", "Core", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "CronTests", dependencies: ["Cron"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ConfigTests", dependencies: ["Config", "Core", "Crypto"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Crypto", "Core"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "Core"]),
        .testTarget(name: "AlertsTests", dependencies: ["Alerts", "State", "Config", "Crypto", "Core"]),
        .testTarget(name: "JobsTests", dependencies: ["Jobs", "Config", "Core", "ObjectStore"]),
        .testTarget(name: "SchedulerTests", dependencies: ["Scheduler", "Cron", "Config", "Core"]),
        .testTarget(name: "IntegrationTests", dependencies: ["ObjectStore", "HTTP", "Crypto", "Core", "Pipeline", "Postgres", "Config", "Jobs", "State", "Scheduler", "Alerts"]),
    ],
    swiftLanguageModes: [.v6]
)
