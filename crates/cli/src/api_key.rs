//! `sealcache api-key --file F --id ID [--tenant T] --scopes a,b [--json] [--dry-run]` (and `cargo
//! xtask api-key`, which runs this very code): mints a scoped API key (`api_keys::mint`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use sealcache_ops::api_keys::{self, KeyId, Scopes, Tenant};

/// Options of `api-key`.
#[derive(Debug, clap::Args)]
pub struct ApiKeyArgs {
    /// The keys file (`SEALCACHE_API_KEYS_FILE`); created (mode 0600) if missing.
    #[arg(long)]
    pub file: PathBuf,
    /// The key's id (shown in logs): 1-64 of a-z, 0-9, _ or -.
    #[arg(long, value_parser = parse_id)]
    pub id: KeyId,
    /// The tenant the key acts for.
    #[arg(long, default_value = Tenant::DEFAULT, value_parser = parse_tenant)]
    pub tenant: Tenant,
    /// Comma-separated scopes: lookup, store, store_shared, invalidate, erase, admin.
    #[arg(long, value_parser = parse_scopes)]
    pub scopes: Scopes,
    /// Print JSON {id, tenant, scopes, file, line, key} (the key only here, once).
    #[arg(long)]
    pub json: bool,
    /// Check that the key could be minted (the file is valid, the id free); write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_id(s: &str) -> Result<KeyId, String> {
    KeyId::new(s).map_err(|e| e.to_string())
}

fn parse_tenant(s: &str) -> Result<Tenant, String> {
    Tenant::new(s).map_err(|e| e.to_string())
}

fn parse_scopes(s: &str) -> Result<Scopes, String> {
    Scopes::parse_list(s).map_err(|e| e.to_string())
}

impl ApiKeyArgs {
    /// Mints the key (or, with `--dry-run`, checks that it could be) and prints it once: alone on
    /// stdout, or in the JSON.
    ///
    /// # Errors
    /// The keys file's refusal (invalid, the id taken, busy, not a regular file) or an I/O error,
    /// naming the file.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let file = self.file.display().to_string();
        if self.dry_run {
            api_keys::check_mint(&self.file, &self.id)
                .with_context(|| format!("cannot mint into {file}"))?;
            if self.json {
                println!(
                    "{}",
                    serde_json::json!({"dry_run": true, "id": self.id.as_str(), "tenant": self.tenant.as_str(), "scopes": self.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(), "file": file})
                );
            } else {
                eprintln!(
                    "✅ dry run: key `{}` can be minted into {file}; nothing written",
                    self.id
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        let minted = api_keys::mint(&self.file, &self.id, &self.tenant, self.scopes)
            .with_context(|| format!("cannot mint into {file}"))?;
        let entry = &minted.entry;
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "id": entry.id.as_str(),
                    "tenant": entry.tenant.as_str(),
                    "scopes": entry.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                    "file": file,
                    "line": entry.line,
                    "key": minted.expose_secret(),
                })
            );
        } else {
            // The key alone on stdout (KEY=$(sealcache api-key ...)), the rest on stderr.
            eprintln!(
                "✅ API key `{}` (scopes {}) appended to {file}, line {} (its SHA-256 only)",
                entry.id, entry.scopes, entry.line
            );
            eprintln!(
                "   shown once, below: give it to its user; a running server takes it on SIGHUP"
            );
            println!("{}", minted.expose_secret());
        }
        Ok(ExitCode::SUCCESS)
    }
}
