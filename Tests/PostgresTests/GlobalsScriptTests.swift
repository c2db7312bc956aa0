import Foundation
@testable import Postgres
import Testing

/// What pg_dumpall 15 --globals-only writes (taken from a real run, role names changed).
let dumpallGlobals = #"""
--
-- PostgreSQL database cluster dump
--

\restrict mI9zLn0i1XtAaswAP50bYDeePLW9WuRGdshIFLWlc9Xb6byBd7TeZjMG7WQDz8B

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;
CREATE ROLE "xo App";
ALTER ROLE "xo App" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:Cvq0TeZscXfSQZLs3RoiYg==$vwPmIfhh=:qCM7cnok1f8';
CREATE ROLE xo_owner;
ALTER ROLE xo_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
COMMENT ON ROLE xo_owner IS 'own;er ''quoted''
two lines';
CREATE ROLE other_app;
ALTER ROLE other_app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;

--
-- User Configurations
--

--
-- User Config "xo_owner"
--

ALTER ROLE xo_owner SET search_path TO 'a', 'b';


--
-- Role memberships
--

GRANT xo_owner TO "xo App" GRANTED BY postgres;
GRANT other_app TO postgres GRANTED BY postgres;

CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';
GRANT SET ON PARAMETER work_mem TO "xo App";

\unrestrict mI9zLn0i1XtAaswAP50bYDeePLW9WuRGdshIFLWlc9Xb6byBd7TeZjMG7WQDz8B

--
-- PostgreSQL database cluster dump complete
--
"""#

@Suite struct GlobalsScriptTests {
    @Test func splitsStatementsLikePsql() {
        let s = SQLScript(dumpallGlobals).statements
        #expect(s.filter(\.isMetaCommand).count == 2)
        let comment = s.first { $0.text.hasPrefix("COMMENT ON ROLE") }
        #expect(comment?.text == "COMMENT ON ROLE xo_owner IS 'own;er ''quoted''\ntwo lines'")
        #expect(s.contains { $0.text == "SET standard_conforming_strings = on" })
        let q = SQLScript.tokens(#"GRANT "a""b" TO x, E'it\'s;' $q$ ; $q$"#)
        #expect(q.map(\.kind) == [.word, .quotedIdentifier, .word, .word, .other, .string, .string])
        #expect(q[1].text == #"a"b"#)
    }

    @Test func readsRolesMembershipsAndTablespaces() {
        let g = GlobalsScript(dumpallGlobals)
        #expect(g.roles == ["postgres", "xo App", "xo_owner", "other_app"])
        #expect(g.memberships.map { "\($0.role)>\($0.member)" } == ["xo_owner>xo App", "other_app>postgres"])
        #expect(g.tablespaces == ["fast"])
        // xo_owner's objects need "xo App" (its member); postgres links to other_app.
        #expect(g.rolesLinked(to: ["xo_owner"]) == ["xo_owner", "xo App"])
        #expect(g.rolesLinked(to: ["postgres"]) == ["postgres", "other_app"])
        // A group's members come along, its other groups too, but not the members of those groups.
        let h = GlobalsScript("GRANT staff TO alice, bob;\nGRANT alice TO alice_login;\nGRANT everyone TO staff;\nGRANT everyone TO mallory;")
        #expect(h.rolesLinked(to: ["staff"]) == ["staff", "alice", "bob", "alice_login", "everyone"])
        #expect(h.rolesLinked(to: ["alice"]) == ["alice", "alice_login", "staff", "everyone"])
    }

    @Test func filteredCreatesOnlyMissingRolesLeavesExistingOnesAlone() {
        let g = GlobalsScript(dumpallGlobals)
        let f = g.filtered(create: ["xo App", "xo_owner"], existing: ["postgres", "other_app"], withPasswords: false)
        #expect(f.created == ["xo App", "xo_owner"])
        #expect(f.memberships == ["xo_owner → xo App"])
        #expect(f.strippedPasswords)
        #expect(f.skippedTablespaces == ["fast"])
        #expect(f.sql == """
        SET default_transaction_read_only = off;
        SET client_encoding = 'UTF8';
        SET standard_conforming_strings = on;
        CREATE ROLE "xo App";
        ALTER ROLE "xo App" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
        CREATE ROLE xo_owner;
        ALTER ROLE xo_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
        COMMENT ON ROLE xo_owner IS 'own;er ''quoted''
        two lines';
        ALTER ROLE xo_owner SET search_path TO 'a', 'b';
        GRANT xo_owner TO "xo App" GRANTED BY postgres;
        GRANT SET ON PARAMETER work_mem TO "xo App";

        """)
        // Nothing about postgres (the superuser restoring) nor other_app.
        #expect(!f.sql.contains("ROLE postgres"))
        #expect(!f.sql.contains("other_app"))
        #expect(!f.sql.contains("\\restrict"))
    }

    @Test func passwordsOnlyWhenAskedAndMissingGrantorsDropped() {
        let g = GlobalsScript(dumpallGlobals)
        let f = g.filtered(create: ["xo App", "xo_owner"], existing: [], withPasswords: true)
        #expect(!f.strippedPasswords)
        #expect(f.sql.contains("PASSWORD 'SCRAM-SHA-256$4096:"))
        // GRANTED BY postgres, which neither exists nor is created: granted by the restoring role.
        #expect(f.sql.contains("GRANT xo_owner TO \"xo App\";\n"))
        // Both roles exist: nothing to do for them, not even the membership.
        let none = g.filtered(create: [], existing: ["postgres", "xo App", "xo_owner", "other_app"], withPasswords: false)
        #expect(none.created.isEmpty)
        #expect(none.memberships.isEmpty)
        #expect(!none.sql.contains("ROLE"))
    }

    @Test func rolesNamedInACLs() {
        #expect(rolesNamed(inACL: "REVOKE ALL ON TABLE public.t FROM PUBLIC;\nGRANT SELECT,INSERT ON TABLE public.t TO app_rw;\nGRANT ALL ON TABLE public.t TO \"Ops Team\" WITH GRANT OPTION;\n")
                == ["app_rw", "Ops Team"])
        #expect(rolesNamed(inACL: "ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public GRANT SELECT ON TABLES TO app_ro;\n")
                == ["app_owner", "app_ro"])
        #expect(rolesNamed(inACL: "SET SESSION AUTHORIZATION boss;\nGRANT USAGE ON SCHEMA s TO a, b GRANTED BY boss;\nRESET SESSION AUTHORIZATION;") == ["a", "b", "boss"])
    }
}
