//! Command policy: may this tenant run this command? Allow/deny lists of commands and
//! @categories, read-only tenants, and the default deny list for shared backends — with
//! Redis's own `-NOPERM` wording so clients treat a refusal as they would Redis's ACL.

use crate::command::table::{self, CommandSpec, flags};

/// Commands no tenant of a shared backend may run unless its config names them in `allow`:
/// they reconfigure, stop, replicate or inspect the whole server, or reach other tenants'
/// data or connections. SCRIPT KILL stays allowed: a runaway script makes every tenant wait
/// (BUSY), and it only stops a script that has not written, as in Redis.
pub const DEFAULT_DENY: &[&str] = &[
    "config",
    "debug",
    "shutdown",
    "monitor",
    "slaveof",
    "replicaof",
    "acl",
    "module",
    "sync",
    "psync",
    "failover",
    "swapdb",
    "migrate",
    "client|kill",
    "slowlog",
    "latency",
    "save",
    "bgsave",
    "bgrewriteaof",
    "script|flush",
    "function|flush",
    "function|restore",
    // Function libraries are one namespace shared by all tenants: loading or deleting one
    // could replace another tenant's.
    "function|load",
    "function|delete",
    "client|pause",
    "client|unpause",
    "replconf",
    // Cluster administration, and the two that count or list any tenant's keys by slot.
    "cluster|addslots",
    "cluster|addslotsrange",
    "cluster|bumpepoch",
    "cluster|count-failure-reports",
    "cluster|countkeysinslot",
    "cluster|delslots",
    "cluster|delslotsrange",
    "cluster|failover",
    "cluster|flushslots",
    "cluster|forget",
    "cluster|getkeysinslot",
    "cluster|meet",
    "cluster|replicate",
    "cluster|reset",
    "cluster|saveconfig",
    "cluster|set-config-epoch",
    "cluster|setslot",
];

/// Every ACL category Redis 7.0 has (`ACL CAT`), plus `all`.
const CATEGORIES: &[&str] = &[
    "all",
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// One entry of a deny/allow list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A command or `container|subcommand`, lower case as the table names it.
    Command(String),
    /// `@category` without the `@`.
    Category(String),
}

impl Rule {
    /// Parses `get`, `CLIENT|KILL` or `@dangerous`; unknown names are errors, so a typo in
    /// a deny list cannot silently allow a command.
    pub fn parse(entry: &str) -> Result<Rule, String> {
        let lower = entry.trim().to_ascii_lowercase();
        if let Some(cat) = lower.strip_prefix('@') {
            return if CATEGORIES.contains(&cat) {
                Ok(Rule::Category(cat.to_string()))
            } else {
                Err(format!(
                    "unknown ACL category {entry:?} (one of @{})",
                    CATEGORIES.join(", @")
                ))
            };
        }
        let (container, sub) = match lower.split_once('|') {
            Some((c, s)) => (c, Some(s)),
            None => (lower.as_str(), None),
        };
        let Some(spec) = table::lookup(container.as_bytes()) else {
            return Err(format!("unknown command {entry:?}"));
        };
        if let Some(sub) = sub
            && table::lookup_subcommand(spec, sub.as_bytes()).is_none()
        {
            return Err(format!("unknown subcommand {entry:?}"));
        }
        Ok(Rule::Command(lower))
    }

    fn names(&self, cmd: &CommandSpec, container: Option<&CommandSpec>) -> bool {
        match self {
            Rule::Command(n) => n == cmd.name || container.is_some_and(|c| c.name == n),
            Rule::Category(_) => false,
        }
    }

    fn covers_category(&self, cmd: &CommandSpec) -> bool {
        match self {
            Rule::Category(c) => c == "all" || cmd.acl_categories.contains(&c.as_str()),
            Rule::Command(_) => false,
        }
    }
}

/// A tenant's compiled command policy.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    deny: Vec<Rule>,
    allow: Vec<Rule>,
    read_only: bool,
    default_deny: bool,
    /// [`Acl::check`]'s answer for each top-level command of the table, by ordinal (worked
    /// out once: the rule walk was a tenth of a tenant's forwarded GET). Empty: every
    /// command goes through the rules.
    refused: Vec<bool>,
}

impl Acl {
    /// Builds the policy from config lists (already validated at load; a bad entry here is
    /// reported again rather than ignored).
    pub fn new(
        deny: &[String],
        allow: &[String],
        read_only: bool,
        default_deny: bool,
    ) -> Result<Acl, String> {
        let parse = |l: &[String]| l.iter().map(|e| Rule::parse(e)).collect::<Result<_, _>>();
        let mut acl = Acl {
            deny: parse(deny)?,
            allow: parse(allow)?,
            read_only,
            default_deny,
            refused: Vec::new(),
        };
        acl.refused = table::all()
            .iter()
            .map(|cmd| acl.refuses(cmd, None))
            .collect();
        Ok(acl)
    }

    /// Everything allowed (the single-user mode before tenants, or a trusted tenant).
    pub fn permissive() -> Acl {
        Acl::default()
    }

    /// None if `cmd` may run; else the NOPERM error text. `cmd` is the effective command
    /// (a subcommand for containers) and `container` its parent, if any.
    ///
    /// Precedence, most specific first: a command denied by name; a command allowed by name
    /// (overrides its categories and the default list); the default deny list; a denied
    /// category; a non-empty allow list not covering the command. Read-only tenants never
    /// run write commands, whatever the lists say.
    pub fn check(&self, cmd: &CommandSpec, container: Option<&CommandSpec>) -> Option<String> {
        let known = match container {
            None => table::ordinal(cmd).and_then(|i| self.refused.get(i).copied()),
            Some(_) => None,
        };
        known
            .unwrap_or_else(|| self.refuses(cmd, container))
            .then(|| noperm(cmd.name))
    }

    /// [`Acl::check`] worked out from the rules.
    fn refuses(&self, cmd: &CommandSpec, container: Option<&CommandSpec>) -> bool {
        if self.read_only && cmd.has(flags::WRITE) {
            return true;
        }
        if self.deny.iter().any(|r| r.names(cmd, container)) {
            return true;
        }
        if self.allow.iter().any(|r| r.names(cmd, container)) {
            return false;
        }
        if self.default_deny
            && DEFAULT_DENY
                .iter()
                .any(|d| *d == cmd.name || container.is_some_and(|c| c.name == *d))
        {
            return true;
        }
        if self.deny.iter().any(|r| r.covers_category(cmd)) {
            return true;
        }
        !self.allow.is_empty() && !self.allow.iter().any(|r| r.covers_category(cmd))
    }
}

impl Acl {
    /// [`Acl::check`] for a command line: the subcommand argv names, if `cmd` has them.
    pub fn check_argv(&self, cmd: &CommandSpec, argv: &[bytes::Bytes]) -> Option<String> {
        match crate::command::keys::resolve(cmd, argv) {
            Ok(sub) if !std::ptr::eq(sub, cmd) => self.check(sub, Some(cmd)),
            _ => self.check(cmd, None),
        }
    }
}

/// Redis 7.0's ACL refusal, e.g. `NOPERM this user has no permissions to run the
/// 'config|get' command` (checked against redis-server 7.0.15).
pub fn noperm(name: &str) -> String {
    format!("NOPERM this user has no permissions to run the '{name}' command")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(deny: &[&str], allow: &[&str], read_only: bool, default_deny: bool) -> Acl {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Acl::new(&v(deny), &v(allow), read_only, default_deny).unwrap()
    }

    /// Checks a command line the way the session does: the subcommand, with its container.
    fn verdict(a: &Acl, line: &str) -> Option<String> {
        let words: Vec<bytes::Bytes> = line
            .split(' ')
            .map(|w| bytes::Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let top = table::lookup(&words[0]).unwrap();
        match words.get(1).and_then(|s| table::lookup_subcommand(top, s)) {
            Some(sub) if !top.subcommands.is_empty() => a.check(sub, Some(top)),
            _ => a.check(top, None),
        }
    }

    /// The per-command answers kept at construction are the rules' answers, for every
    /// top-level command and several policies.
    #[test]
    fn the_kept_answers_are_the_rules_answers() {
        let policies = [
            acl(&[], &[], false, true),
            acl(&["@dangerous"], &[], false, true),
            acl(&["keys", "@admin"], &["config"], false, true),
            acl(&[], &["@read", "@connection"], false, true),
            acl(&[], &[], true, false),
        ];
        for a in &policies {
            assert_eq!(a.refused.len(), table::all().len());
            for cmd in table::all() {
                assert_eq!(
                    a.check(cmd, None).is_some(),
                    a.refuses(cmd, None),
                    "{}",
                    cmd.name
                );
            }
        }
        assert!(
            policies[1]
                .check(table::lookup(b"flushall").unwrap(), None)
                .is_some()
        );
        assert!(
            policies[4]
                .check(table::lookup(b"set").unwrap(), None)
                .is_some()
        );
        assert!(
            policies[4]
                .check(table::lookup(b"get").unwrap(), None)
                .is_none()
        );
    }

    #[test]
    fn parse_rejects_unknown_names() {
        assert_eq!(Rule::parse("GET").unwrap(), Rule::Command("get".into()));
        assert_eq!(
            Rule::parse("@Dangerous").unwrap(),
            Rule::Category("dangerous".into())
        );
        assert_eq!(
            Rule::parse("client|kill").unwrap(),
            Rule::Command("client|kill".into())
        );
        assert!(Rule::parse("gett").unwrap_err().contains("unknown command"));
        assert!(
            Rule::parse("@nope")
                .unwrap_err()
                .contains("unknown ACL category")
        );
        assert!(Rule::parse("client|nope").is_err());
    }

    #[test]
    fn default_deny_names_real_commands() {
        for name in DEFAULT_DENY {
            assert_eq!(
                Rule::parse(name),
                Ok(Rule::Command(name.to_string())),
                "{name}"
            );
        }
    }

    #[test]
    fn noperm_is_redis_wording() {
        let a = acl(&["@dangerous"], &[], false, false);
        assert_eq!(
            verdict(&a, "KEYS *").as_deref(),
            Some("NOPERM this user has no permissions to run the 'keys' command")
        );
        assert_eq!(
            verdict(&a, "CONFIG GET x").as_deref(),
            Some("NOPERM this user has no permissions to run the 'config|get' command")
        );
        assert_eq!(verdict(&a, "GET k"), None);
    }

    #[test]
    fn default_deny_list_and_explicit_allow() {
        let a = acl(&[], &[], false, true);
        for line in [
            "CONFIG SET a b",
            "DEBUG SLEEP 0",
            "SHUTDOWN",
            "MONITOR",
            "REPLICAOF no one",
            "SLAVEOF no one",
            "ACL WHOAMI",
            "MODULE LIST",
            "SWAPDB 0 1",
            "CLIENT KILL ID 1",
            "SCRIPT FLUSH",
        ] {
            assert!(verdict(&a, line).is_some(), "{line} allowed");
        }
        assert_eq!(verdict(&a, "CLIENT ID"), None);
        assert_eq!(verdict(&a, "SCRIPT LOAD x"), None);
        assert_eq!(verdict(&a, "SET k v"), None);
        let a = acl(&[], &["config|get"], false, true);
        assert_eq!(verdict(&a, "CONFIG GET x"), None);
        assert!(verdict(&a, "CONFIG SET x y").is_some());
        let off = acl(&[], &[], false, false);
        assert_eq!(verdict(&off, "CONFIG GET x"), None);
    }

    #[test]
    fn allow_list_is_a_whitelist_and_names_beat_categories() {
        let a = acl(&["@write"], &["@read", "set"], false, false);
        assert_eq!(verdict(&a, "GET k"), None);
        assert_eq!(verdict(&a, "SET k v"), None, "named command beats @write");
        assert!(verdict(&a, "DEL k").is_some());
        assert!(verdict(&a, "PING").is_some(), "not in the allow list");
        let a = acl(&["get"], &["@all"], false, false);
        assert!(
            verdict(&a, "GET k").is_some(),
            "a named deny beats everything"
        );
        assert_eq!(verdict(&a, "MGET k"), None);
    }

    #[test]
    fn read_only_tenants_never_write() {
        let named = acl(&[], &["set", "@all"], true, false);
        assert!(verdict(&named, "SET k v").is_some());
        let a = acl(&[], &[], true, false);
        assert!(verdict(&a, "SET k v").is_some());
        assert!(verdict(&a, "DEL k").is_some());
        assert!(
            verdict(&a, "EVAL s 0").is_none(),
            "scripts are checked per call"
        );
        assert_eq!(verdict(&a, "GET k"), None);
        assert_eq!(verdict(&a, "SCAN 0"), None);
    }
}
