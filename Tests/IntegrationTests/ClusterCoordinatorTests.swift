import Config
import Core
import Foundation
import Postgres
@testable import Scheduler
import Testing

/// `ClusterCoordinator` against the test PostgreSQL: each test gets a fresh
/// lock database and two coordinators with different node names, standing in
/// for two daemons on two hosts.
@Suite(.serialized) struct ClusterCoordinatorTests {
    struct Pair {
        let db: TestDatabase
        let a: ClusterCoordinator
        let b: ClusterCoordinator
    }

    func withPair(_ tag: String, prepare: Bool = true, _ body: (Pair) async throws -> Void) async throws {
        let db = try await TestDatabase.create("cluster_\(tag)", sql: "")
        let a = ClusterCoordinator(config: ClusterConfig(lockDatabase: db.url, node: "node-a"))
        let b = ClusterCoordinator(config: ClusterConfig(lockDatabase: db.url, node: "node-b"))
        do {
            if prepare {
                try await a.prepare()
                try await b.prepare()
            }
            try await body(Pair(db: db, a: a, b: b))
        } catch {
            await db.drop()
            throw error
        }
        await db.drop()
    }

    /// A whole-second instant, like the cron planner produces.
    func instant(_ i: Int) -> Date { Date(timeIntervalSince1970: 1_780_000_000 + Double(i) * 60) }

    @Test func racingClaimsForTheSameInstantYieldExactlyOneClaimEachTime() async throws {
        try await withPair("race") { p in
            for i in 0..<20 {
                let at = instant(i)
                async let ra = p.a.claim(job: "db-backup", scheduledAt: at)
                async let rb = p.b.claim(job: "db-backup", scheduledAt: at)
                let results = try await [ra, rb]
                let claims = results.compactMap(\.claim)
                #expect(claims.count == 1, "instant \(i): \(results)")
                for r in results {
                    switch r {
                    case .claimed(let c):
                        #expect(c.attempt == 1 && c.trigger == .schedule && c.scheduledAt == at)
                    case .alreadyRan, .runningElsewhere:
                        break
                    }
                }
                for c in claims { await (c.node == "node-a" ? p.a : p.b).finish(c, result: "ok", error: nil) }
            }
            let runs = try await p.a.recentRuns(job: "db-backup", limit: 100)
            #expect(runs.count == 20)
            #expect(runs.allSatisfy { $0.attempt == 1 && $0.result == "ok" && $0.finishedAt != nil && $0.trigger == "schedule" })
            #expect(runs.map(\.scheduledAt) == (0..<20).reversed().map(instant))
        }
    }

    @Test func claimAfterFinishSaysAlreadyRanWithTheNode() async throws {
        try await withPair("done") { p in
            let at = instant(1)
            let c = try #require(try await p.a.claim(job: "db-backup", scheduledAt: at).claim)
            #expect(c.node == "node-a" && c.attempt == 1)
            await p.a.finish(c, result: "failed", error: "pg_dump exited with status 1")
            for coordinator in [p.a, p.b] {
                let again = try await coordinator.claim(job: "db-backup", scheduledAt: at)
                guard case .alreadyRan(let node) = again else { Issue.record("expected alreadyRan, got \(again)"); return }
                #expect(node == "node-a")
            }
            // The lock was released after each alreadyRan: the next instant is free.
            let next = try #require(try await p.b.claim(job: "db-backup", scheduledAt: instant(2)).claim)
            await p.b.finish(next, result: "ok", error: nil)
            let runs = try await p.b.recentRuns(job: "db-backup", limit: 1)
            #expect(runs.map(\.node) == ["node-b"])
            let first = try await p.a.recentRuns(job: "db-backup", limit: 5).last
            #expect(first?.result == "failed" && first?.error == "pg_dump exited with status 1" && first?.pid == Int(getpid()))
        }
    }

    @Test func aRunningClaimBlocksOtherInstantsOfTheSameJobOnly() async throws {
        try await withPair("busy") { p in
            let c = try #require(try await p.a.claim(job: "db-backup", scheduledAt: instant(1)).claim)
            let other = try await p.b.claim(job: "db-backup", scheduledAt: instant(2))
            guard case .runningElsewhere(let node) = other else { Issue.record("expected runningElsewhere, got \(other)"); return }
            #expect(node == "node-a")
            // Same instant from the other node: also running elsewhere.
            guard case .runningElsewhere = try await p.b.claim(job: "db-backup", scheduledAt: instant(1)) else {
                Issue.record("expected runningElsewhere"); return
            }
            // Another job is independent.
            let verify = try #require(try await p.b.claim(job: "db-verify", scheduledAt: instant(2)).claim)
            #expect(await p.a.stillHolds(c))
            await p.b.finish(verify, result: "ok", error: nil)
            await p.a.finish(c, result: "ok", error: nil)
            #expect(try await p.b.claim(job: "db-backup", scheduledAt: instant(2)).claim != nil)
        }
    }

    /// Node A finished instant 1 and went straight on to instant 2: node B,
    /// still asking about instant 1, learns that it ran (not that something
    /// is running), so it stops waiting for it.
    @Test func aFinishedInstantIsReportedAsRanWhileTheLockIsHeldForTheNext() async throws {
        try await withPair("next") { p in
            let one = try #require(try await p.a.claim(job: "db-backup", scheduledAt: instant(1)).claim)
            await p.a.finish(one, result: "ok", error: nil)
            let two = try #require(try await p.a.claim(job: "db-backup", scheduledAt: instant(2)).claim)
            guard case .alreadyRan(let node) = try await p.b.claim(job: "db-backup", scheduledAt: instant(1)) else {
                Issue.record("expected alreadyRan for the finished instant"); return
            }
            #expect(node == "node-a")
            guard case .runningElsewhere(let holder) = try await p.b.claim(job: "db-backup", scheduledAt: instant(2)) else {
                Issue.record("expected runningElsewhere for the running instant"); return
            }
            #expect(holder == "node-a")
            await p.a.finish(two, result: "ok", error: nil)
        }
    }

    @Test func aKilledOwnersInstantIsTakenOverAsAttempt2() async throws {
        try await withPair("takeover") { p in
            let at = instant(3)
            let c = try #require(try await p.a.claim(job: "db-backup", scheduledAt: at).claim)
            #expect(try await p.b.abandonedRuns(job: "db-backup").isEmpty)
            await p.a.abandon(c)   // node a "killed": its session ends without finish
            #expect(await !p.a.stillHolds(c))
            let abandoned = try await p.b.abandonedRuns(job: "db-backup")
            #expect(abandoned.map(\.scheduledAt) == [at] && abandoned.first?.node == "node-a")

            let taken = try #require(try await p.b.claim(job: "db-backup", scheduledAt: at).claim)
            #expect(taken.attempt == 2 && taken.node == "node-b")
            #expect(try await p.a.abandonedRuns(job: "db-backup").isEmpty)
            await p.b.finish(taken, result: "ok", error: nil)
            // node a's late finish (it was not really dead) does not overwrite node b's record.
            await p.a.finish(c, result: "late", error: nil)
            let runs = try await p.a.recentRuns(job: "db-backup", limit: 10)
            #expect(runs.count == 1)
            #expect(runs.first?.node == "node-b" && runs.first?.attempt == 2 && runs.first?.result == "ok")
        }
    }

    @Test func aTerminatedBackendReleasesTheLockLikeAKill() async throws {
        try await withPair("terminate") { p in
            let at = instant(4)
            let c = try #require(try await p.a.claim(job: "db-backup", scheduledAt: at).claim)
            let admin = try await PGConnection.connect(TestDatabase.admin())
            #expect(try await admin.queryValue("SELECT pg_terminate_backend($1::int)", params: [String(c.backendPID)]) == "t")
            await admin.close()
            // The server ends the session asynchronously: wait for the claim to succeed.
            var result: ClaimResult = .runningElsewhere(node: nil)
            _ = try await eventually(5) {
                result = try await p.b.claim(job: "db-backup", scheduledAt: at)
                return result.claim != nil
            }
            let taken = try #require(result.claim)
            #expect(taken.attempt == 2)
            await p.b.finish(taken, result: "ok", error: nil)
            await p.a.finish(c, result: "ok", error: nil)   // session gone: logged, no crash, no overwrite
            #expect(try await p.a.recentRuns(job: "db-backup", limit: 1).first?.node == "node-b")
        }
    }

    @Test func manualAndScheduledRunsExcludeEachOther() async throws {
        try await withPair("manual") { p in
            let m = try #require(try await p.a.claimManual(job: "db-backup").claim)
            #expect(m.trigger == .manual && m.attempt == 1)
            guard case .runningElsewhere(let node) = try await p.b.claim(job: "db-backup", scheduledAt: instant(5)) else {
                Issue.record("a scheduled claim should wait for the manual run"); return
            }
            #expect(node == "node-a")
            guard case .runningElsewhere = try await p.b.claimManual(job: "db-backup") else {
                Issue.record("a second manual run should be refused"); return
            }
            await p.a.finish(m, result: "ok", error: nil)

            let s = try #require(try await p.b.claim(job: "db-backup", scheduledAt: instant(5)).claim)
            guard case .runningElsewhere(let holder) = try await p.a.claimManual(job: "db-backup") else {
                Issue.record("a manual run should wait for the scheduled run"); return
            }
            #expect(holder == "node-b")
            await p.b.finish(s, result: "ok", error: nil)
            let m2 = try #require(try await p.a.claimManual(job: "db-backup").claim)
            await p.a.finish(m2, result: "ok", error: nil)
            let runs = try await p.a.recentRuns(job: "db-backup", limit: 10)
            #expect(runs.count == 3)
            #expect(runs.filter { $0.trigger == "manual" }.count == 2)
            #expect(runs.allSatisfy { $0.finishedAt != nil })
        }
    }

    @Test(arguments: 1...5)
    func concurrentPrepareOnANewDatabaseSucceedsEverywhere(round: Int) async throws {
        try await withPair("prepare\(round)", prepare: false) { p in
            let c = ClusterCoordinator(config: ClusterConfig(lockDatabase: p.db.url, node: "node-c"))
            // Each checks for the tables first, so all three usually race into creation.
            async let x: Void = p.a.prepare()
            async let y: Void = p.b.prepare()
            async let z: Void = c.prepare()
            _ = try await (x, y, z)
            #expect(try await p.a.claim(job: "j", scheduledAt: instant(0)).claim != nil)
            try await p.a.prepare()   // idempotent
            let conn = try await PGConnection.connect(p.db.url)
            #expect(try await conn.query("SELECT version FROM cairn_cluster_schema") == [["1"]])
            // A schema from a newer cairn is refused with a clear message.
            try await conn.execute("INSERT INTO cairn_cluster_schema (version) VALUES (2)")
            await conn.close()
            let e = await #expect(throws: CairnError.self) { try await p.b.prepare() }
            #expect(e?.code == .database && e?.message.contains("schema version 2") == true)
        }
    }

    @Test func badLockDatabaseGivesAOneLineErrorWithoutThePassword() async throws {
        let secret = "lock-pw-\(UInt32.random(in: 0...UInt32.max))"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-cluster-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pwFile = dir + "/lock.pw"
        try (secret + "\n").write(toFile: pwFile, atomically: true, encoding: .utf8)
        #expect(chmod(pwFile, 0o600) == 0)

        let missingDB = try TestDatabase.url(for: "cairn_no_such_lock_db")
        let info = try ConnInfo(missingDB)
        let coordinator = ClusterCoordinator(config: ClusterConfig(lockDatabase: missingDB, passwordFile: pwFile, node: "n"))
        for op in ["prepare", "claim"] {
            let e = await #expect(throws: CairnError.self) {
                if op == "prepare" { try await coordinator.prepare() } else { _ = try await coordinator.claim(job: "j", scheduledAt: Date()) }
            }
            #expect(e?.code == .database)
            let text = e.map { "\($0)" } ?? ""
            #expect(text.contains("cluster lock database"), "\(text)")
            #expect(text.contains("\(info["host"]!):\(info["port"]!)/cairn_no_such_lock_db"), "\(text)")
            #expect(!text.contains(secret) && !text.contains("\n"), "\(text)")
        }

        // Nothing listens on this port.
        let closed = ClusterCoordinator(config: ClusterConfig(lockDatabase: "postgres://cairn@127.0.0.1:1/locks", passwordFile: pwFile))
        let e2 = await #expect(throws: CairnError.self) { try await closed.prepare() }
        #expect(e2?.code == .database && e2?.message.contains("127.0.0.1:1/locks") == true && e2?.message.contains(secret) == false)

        // A malformed string is a config error that does not echo the string.
        let bad = ClusterCoordinator(config: ClusterConfig(lockDatabase: "postgres://u:\(secret)@h:5432/db?nonsense=1"))
        let e3 = await #expect(throws: CairnError.self) { try await bad.prepare() }
        #expect(e3?.message.hasPrefix("cluster lock database") == true && e3?.message.contains(secret) == false)

        // A password file others can read is refused before connecting.
        #expect(chmod(pwFile, 0o644) == 0)
        let e4 = await #expect(throws: CairnError.self) { try await coordinator.prepare() }
        #expect(e4?.code == .config && e4?.message.contains("chmod 600") == true)
    }

    @Test func nodeNameDefaultsToTheHostName() {
        let c = ClusterCoordinator(config: ClusterConfig(lockDatabase: "postgres://h/db"))
        #expect(c.node == ClusterCoordinator.hostName() && !c.node.isEmpty)
        #expect(ClusterCoordinator(config: ClusterConfig(lockDatabase: "postgres://h/db", node: "web-2")).node == "web-2")
        #expect(ClusterCoordinator.epoch(Date(timeIntervalSince1970: 1_780_000_000.25)) == "1780000000.250000")
        #expect(ClusterCoordinator.epoch(Date(timeIntervalSince1970: 5)) == "5.000000")
    }
}
