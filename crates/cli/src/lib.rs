//! The library half of the `sealcache` operator command: the commands the repository's `cargo
//! xtask` runs word for word (today `api-key`), so that both parse the same flags and print the
//! same JSON from one implementation.
//!
//! ```
//! use clap::Parser;
//!
//! /// A command line of one's own with the `api-key` flags in it.
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     key: sealcache_cli::api_key::ApiKeyArgs,
//! }
//!
//! let cli = Cli::try_parse_from(["mint", "--file", "keys.toml", "--id", "web", "--scopes", "lookup,store"])
//!     .expect("valid flags");
//! assert_eq!(cli.key.id.as_str(), "web");
//! assert_eq!(cli.key.scopes.to_string(), "lookup,store");
//! assert!(cli.key.tenant.is_default());
//! // Ids and scopes are checked while parsing.
//! assert!(Cli::try_parse_from(["mint", "--file", "k", "--id", "Web", "--scopes", "lookup"]).is_err());
//! assert!(Cli::try_parse_from(["mint", "--file", "k", "--id", "web", "--scopes", "root"]).is_err());
//! ```

// A command-line program's commands: printing their report is their job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod api_key;
