//! The `sealcache` binary, run as an operator runs it: no checkout, a deployment directory.

use std::path::Path;
use std::process::{Command, Output};

#[expect(
    clippy::expect_used,
    reason = "a test: not starting the binary fails it"
)]
fn sealcache(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealcache"))
        .args(args)
        .current_dir(cwd)
        .env_remove("REDIS_SECURITY_MODE")
        .output()
        .expect("cannot run sealcache")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn generate_validate_and_dry_runs_change_nothing() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("deployment");
    let dir_arg = dir.to_string_lossy().into_owned();

    // A dry run plans the files and writes none.
    let planned = sealcache(
        &[
            "config",
            "generate",
            "--environment",
            "production",
            "--out",
            &dir_arg,
            "--dry-run",
        ],
        tmp.path(),
    );
    assert!(planned.status.success(), "{}", text(&planned));
    let out = text(&planned);
    assert!(out.contains("📋 would write"), "{out}");
    assert!(out.contains("secrets/backend/redis_app_password"), "{out}");
    assert!(!dir.exists(), "a dry run created {}", dir.display());

    let generated = sealcache(
        &[
            "config",
            "generate",
            "--environment",
            "production",
            "--out",
            &dir_arg,
        ],
        tmp.path(),
    );
    assert!(generated.status.success(), "{}", text(&generated));
    assert!(text(&generated).contains("✅ Validated: acceptable"));
    assert!(dir.join("secrets/api_key").is_file());

    // Generating again refuses (no --force), dry run or not, and changes nothing.
    let env_before = std::fs::read(dir.join(".env"))?;
    for extra in [None, Some("--dry-run")] {
        let mut args = vec![
            "config",
            "generate",
            "--environment",
            "production",
            "--out",
            &dir_arg,
        ];
        args.extend(extra);
        let again = sealcache(&args, tmp.path());
        assert!(!again.status.success(), "{}", text(&again));
    }
    assert_eq!(std::fs::read(dir.join(".env"))?, env_before);

    // validate --json: the report, exit 0.
    let validated = sealcache(
        &["config", "validate", "--dir", &dir_arg, "--json"],
        tmp.path(),
    );
    assert!(validated.status.success(), "{}", text(&validated));
    let report: serde_json::Value = serde_json::from_slice(&validated.stdout)?;
    assert_eq!(report["recommendation"], "acceptable");
    assert_eq!(report["environment"], "production");

    // An unreadable input is exit code 2.
    let missing = tmp.path().join("missing").to_string_lossy().into_owned();
    let unusable = sealcache(&["config", "validate", "--dir", &missing], tmp.path());
    assert_eq!(unusable.status.code(), Some(2), "{}", text(&unusable));

    // No secret value reaches the output.
    let password = std::fs::read_to_string(dir.join("secrets/backend/redis_app_password"))?;
    assert!(!text(&generated).contains(password.trim()));
    Ok(())
}

#[test]
fn dictionary_dry_run_leaves_the_keyring() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("deployment");
    let dir_arg = dir.to_string_lossy().into_owned();
    let generated = sealcache(
        &[
            "config",
            "generate",
            "--environment",
            "production",
            "--out",
            &dir_arg,
        ],
        tmp.path(),
    );
    assert!(generated.status.success(), "{}", text(&generated));
    let samples = tmp.path().join("samples.jsonl");
    let lines: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"answer": "The capital of country {i} is city {}", "model": "gpt-4o", "tokens": {}}}"#,
                i * 7,
                i % 13
            )
        })
        .collect();
    std::fs::write(&samples, lines.join("\n"))?;
    let samples_arg = samples.to_string_lossy().into_owned();
    let keyring = dir.join("secrets/backend/encryption_keyring");
    let before = std::fs::read(&keyring)?;

    let dry = sealcache(
        &[
            "config",
            "dictionary",
            "--samples",
            &samples_arg,
            "--dir",
            &dir_arg,
            "--size",
            "2048",
            "--dry-run",
        ],
        tmp.path(),
    );
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains("would add dictionary"),
        "{}",
        text(&dry)
    );
    assert_eq!(std::fs::read(&keyring)?, before);

    let real = sealcache(
        &[
            "config",
            "dictionary",
            "--samples",
            &samples_arg,
            "--dir",
            &dir_arg,
            "--size",
            "2048",
        ],
        tmp.path(),
    );
    assert!(real.status.success(), "{}", text(&real));
    assert_ne!(std::fs::read(&keyring)?, before);
    Ok(())
}

#[test]
fn k8s_render_dry_run_writes_nothing() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let generated = sealcache(
        &["config", "generate", "--environment", "production"],
        tmp.path(),
    );
    assert!(generated.status.success(), "{}", text(&generated));
    // The defaults are relative to the current directory: deploy/generated, deploy/k8s.
    assert!(tmp.path().join("deploy/generated/.env").is_file());
    let dry = sealcache(&["k8s", "render", "--dry-run"], tmp.path());
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(text(&dry).contains("kustomization.yaml"), "{}", text(&dry));
    assert!(!tmp.path().join("deploy/k8s").exists());
    let real = sealcache(&["k8s", "render"], tmp.path());
    assert!(real.status.success(), "{}", text(&real));
    assert!(
        tmp.path()
            .join("deploy/k8s/overlays/single/kustomization.yaml")
            .is_file()
    );
    Ok(())
}

/// Every file under `dir` with its contents, for "nothing changed" checks.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.insert(path, bytes);
            }
        }
    }
    out
}

#[test]
fn rotate_dry_run_plans_and_changes_nothing() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("deployment");
    let dir_arg = dir.to_string_lossy().into_owned();
    let generated = sealcache(
        &[
            "config",
            "generate",
            "--environment",
            "production",
            "--out",
            &dir_arg,
        ],
        tmp.path(),
    );
    assert!(generated.status.success(), "{}", text(&generated));
    let before = snapshot(&dir);

    let dry = sealcache(
        &[
            "config",
            "rotate",
            "--stage",
            "add",
            "--dir",
            &dir_arg,
            "--dry-run",
        ],
        tmp.path(),
    );
    let out = text(&dry);
    assert!(dry.status.success(), "{out}");
    assert!(
        out.contains("📋 would change") && out.contains("encryption_keyring"),
        "{out}"
    );
    assert!(out.contains("users.acl"), "{out}");
    assert!(out.contains("nothing was changed"), "{out}");
    assert_eq!(snapshot(&dir), before, "a dry run changed the directory");

    // The real stage changes the keyring (no process uses the directory: nothing to reload).
    let real = sealcache(
        &["config", "rotate", "--stage", "add", "--dir", &dir_arg],
        tmp.path(),
    );
    assert!(real.status.success(), "{}", text(&real));
    assert!(
        text(&real).contains("Stage add complete"),
        "{}",
        text(&real)
    );
    assert_ne!(snapshot(&dir), before);

    // add is complete, so promote is next: its dry run plans, and again changes nothing.
    let after_add = snapshot(&dir);
    let promote = sealcache(
        &[
            "config",
            "rotate",
            "--stage",
            "promote",
            "--dir",
            &dir_arg,
            "--dry-run",
        ],
        tmp.path(),
    );
    assert!(promote.status.success(), "{}", text(&promote));
    assert_eq!(snapshot(&dir), after_add);
    Ok(())
}

#[test]
fn status_without_a_backend_fails_naming_it() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let generated = sealcache(
        &["config", "generate", "--environment", "production"],
        tmp.path(),
    );
    assert!(generated.status.success(), "{}", text(&generated));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let status = sealcache(&["status", "--port", &port.to_string()], tmp.path());
    assert!(!status.status.success());
    assert!(
        text(&status).contains(&format!("127.0.0.1:{port}")),
        "{}",
        text(&status)
    );
    Ok(())
}

#[test]
fn down_stops_nothing_it_did_not_start_and_status_names_a_stopped_stack()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let generated = sealcache(
        &["config", "generate", "--environment", "production"],
        tmp.path(),
    );
    assert!(generated.status.success(), "{}", text(&generated));
    let dir = tmp.path().join("deploy/generated");
    // A local stack's record whose pids now run another program (recycled): never signalled.
    let mut sleeper = Command::new("sleep").arg("30").spawn()?;
    std::fs::create_dir_all(dir.join("local"))?;
    std::fs::write(
        dir.join("local/pids.json"),
        format!(
            r#"{{"redis": {0}, "server": {0}, "port": 1, "redis_port": 2}}"#,
            sleeper.id()
        ),
    )?;
    let down = sealcache(&["down", "--dir", "deploy/generated", "--json"], tmp.path());
    assert!(down.status.success(), "{}", text(&down));
    let reports: serde_json::Value = serde_json::from_slice(&down.stdout)?;
    assert_eq!(reports[0]["processes"], serde_json::json!([]), "{reports}");
    assert!(
        reports[0]["dir"]
            .as_str()
            .is_some_and(|d| d.ends_with("generated"))
    );
    assert!(
        sleeper.try_wait()?.is_none(),
        "down signalled a process it did not start"
    );
    assert!(
        !dir.join("local/pids.json").exists(),
        "the stale record stays"
    );
    sleeper.kill()?;
    sleeper.wait()?;
    // A mistyped directory is an error; a project name compose would change is refused before
    // anything runs.
    let nope = sealcache(&["down", "--dir", "deploy/nope"], tmp.path());
    assert!(!nope.status.success());
    assert!(
        text(&nope).contains("is not a directory"),
        "{}",
        text(&nope)
    );
    let upper = sealcache(&["up", "--project", "Breakit-X"], tmp.path());
    assert!(!upper.status.success());
    assert!(text(&upper).contains("--project"), "{}", text(&upper));
    // A failure asked for as JSON is JSON on standard output too.
    let failed = sealcache(&["verify", "--json"], tmp.path());
    assert!(!failed.status.success());
    let error: serde_json::Value = serde_json::from_slice(&failed.stdout)?;
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("no backend of this directory runs")),
        "{error}"
    );
    // Nothing runs from the directory: status says so instead of asking port 8080.
    let status = sealcache(&["status"], tmp.path());
    assert!(!status.status.success());
    assert!(
        text(&status).contains("no backend of this directory runs"),
        "{}",
        text(&status)
    );
    Ok(())
}

#[test]
fn api_key_mints_once_and_dry_run_writes_nothing() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("api_keys.toml");
    let file_arg = file.to_string_lossy().into_owned();
    let dry = sealcache(
        &[
            "api-key",
            "--file",
            &file_arg,
            "--id",
            "web",
            "--scopes",
            "lookup,store",
            "--dry-run",
        ],
        tmp.path(),
    );
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(!file.exists(), "a dry run wrote the keys file");
    let minted = sealcache(
        &[
            "api-key",
            "--file",
            &file_arg,
            "--id",
            "web",
            "--tenant",
            "acme",
            "--scopes",
            "lookup,store",
            "--json",
        ],
        tmp.path(),
    );
    assert!(minted.status.success(), "{}", text(&minted));
    let v: serde_json::Value = serde_json::from_slice(&minted.stdout)?;
    assert_eq!(v["id"], "web");
    assert_eq!(v["tenant"], "acme");
    let key = v["key"].as_str().unwrap_or_default();
    assert!(key.starts_with("sck_"), "{v}");
    // The file holds the digest, never the key; the same id again is refused.
    let stored = std::fs::read_to_string(&file)?;
    assert!(!stored.contains(key) && stored.contains("sha256"));
    let again = sealcache(
        &[
            "api-key", "--file", &file_arg, "--id", "web", "--scopes", "lookup",
        ],
        tmp.path(),
    );
    assert!(!again.status.success(), "{}", text(&again));
    Ok(())
}
