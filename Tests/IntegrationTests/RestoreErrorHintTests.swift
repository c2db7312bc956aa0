import Jobs
import Testing

@Suite struct RestoreErrorHintTests {
    @Test func classifiesPostgresErrorLines() {
        #expect(RestoreErrorHint.classify(errorLine: #"pg_restore: error: could not execute query: ERROR: relation "users" already exists"#)
                == .objectExists("users"))
        #expect(RestoreErrorHint.classify(errorLine: #"pg_restore: error: could not execute query: ERROR:  constraint "c" for relation "t" already exists"#)
                == .objectExists("c"))
        #expect(RestoreErrorHint.classify(errorLine: #"pg_restore: error: could not execute query: ERROR: role "app_rw" does not exist"#)
                == .missingRole("app_rw"))
        #expect(RestoreErrorHint.classify(errorLine: #"psql:<stdin>:4: ERROR: role "a "b" c" does not exist"#) == .missingRole(#"a "b" c"#))
        #expect(RestoreErrorHint.classify(errorLine: "pg_restore: error: could not execute query: ERROR: must be owner of table t") == .permissionDenied)
        #expect(RestoreErrorHint.classify(errorLine: "ERROR: permission denied for schema public") == .permissionDenied)
        // Not a PostgreSQL error, or nothing specific to say.
        #expect(RestoreErrorHint.classify(errorLine: #"psql:<stdin>:7: ERROR: role "app" already exists"#) == nil)
        #expect(RestoreErrorHint.classify(errorLine: "pg_restore: error: connection to server failed: FATAL: database \"x\" does not exist") == nil)
        #expect(RestoreErrorHint.classify(errorLine: #"ERROR: column "already exists" of relation "t" does not exist"#) == nil)
        #expect(RestoreErrorHint.classify(errorLine: "pg_restore: error: could not execute query: ERROR: syntax error at or near \"x\"") == nil)
        #expect(RestoreErrorHint.objectExists("users").advice.contains("--clean"))
        #expect(RestoreErrorHint.missingRole("r").advice.contains("--globals"))
    }
}
