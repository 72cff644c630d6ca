//! `cargo xtask api-key --file F --id ID [--tenant T] --scopes a,b [--json] [--dry-run]`: the
//! operator binary's own command (`sealcache_cli::api_key`), the same flags, JSON and code; what
//! stays here is the check that xtask's flags parse as documented.

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use clap::Parser as _;

    use crate::flags::{Cli, Command};

    #[test]
    fn the_flags_parse_and_refuse_bad_names_and_scopes() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(
                ["cargo xtask", "api-key", "--file", "k.toml"]
                    .iter()
                    .chain(args),
            )
        };
        let cli = parse(&[
            "--id",
            "web",
            "--tenant",
            "acme",
            "--scopes",
            "lookup,store",
        ])
        .unwrap();
        let Command::ApiKey(args) = cli.command else {
            unreachable!("api-key parses as ApiKey")
        };
        assert_eq!(args.scopes.to_string(), "lookup,store");
        assert_eq!(args.tenant.as_str(), "acme");
        let cli = parse(&["--id", "ops", "--scopes", "admin", "--json", "--dry-run"]).unwrap();
        let Command::ApiKey(args) = cli.command else {
            unreachable!("api-key parses as ApiKey")
        };
        assert!(args.tenant.is_default() && args.json && args.dry_run);
        for bad in [
            &["--id", "Web", "--scopes", "lookup"][..],
            &["--id", "web", "--scopes", "lookup,root"],
            &["--id", "web", "--tenant", "a b", "--scopes", "lookup"],
            &["--id", "web"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
