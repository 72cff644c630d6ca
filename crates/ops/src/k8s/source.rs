//! Reading a deployment directory (the layout of `sealcache_config_gen::layout` and
//! `cluster_dir`): its settings, its topology and the secret files each pod mounts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sealcache_config_gen::cluster_dir::{self, ClusterRecord};
use sealcache_config_gen::layout;
use zeroize::Zeroizing;

use crate::error::{Error, Result, io};

/// Variables outside the settings that carry a secret value (the admin user's password, which
/// only provisioning reads).
const OTHER_SECRET_VARIABLES: &[&str] = &["REDIS_ADMIN_PASSWORD"];

/// Whether `name` carries a secret value: a declared secret setting
/// ([`sealcache_settings::Setting::secret_variables`], deprecated names included) or one of
/// [`OTHER_SECRET_VARIABLES`]. A `.env` that sets one is refused (it becomes a ConfigMap).
fn is_secret_variable(name: &str) -> bool {
    OTHER_SECRET_VARIABLES.contains(&name)
        || sealcache_settings::SETTINGS
            .iter()
            .any(|setting| setting.secret_variables().contains(&name))
}

/// Temporary files a write-then-rename leaves behind when interrupted (never mounted data).
const TMP_SUFFIX: &str = ".sealcache-tmp";

/// One file of the directory that goes into a Secret: its key (the file name) and its bytes.
pub(crate) struct SecretFile {
    /// The file name, which becomes the Secret's key and the file name in the pod.
    pub(crate) name: String,
    /// The contents (zeroized on drop).
    pub(crate) contents: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretFile({}, {} bytes)",
            self.name,
            self.contents.len()
        )
    }
}

/// What a rendering reads from a deployment directory.
#[derive(Debug)]
pub(crate) struct Source {
    /// The directory.
    pub(crate) dir: PathBuf,
    /// The cluster record, `None` for a single-node deployment.
    pub(crate) cluster: Option<ClusterRecord>,
    /// `.env` (non-secret settings; checked to carry no secret).
    pub(crate) settings: BTreeMap<String, String>,
    /// `secrets/redis/*`: the ACL file, the health password (and in a cluster the replication
    /// password and `cluster.conf`), mounted whole into the Redis pods.
    pub(crate) redis_files: Vec<SecretFile>,
    /// `secrets/backend/*`: the app and monitor passwords and the keyring.
    pub(crate) backend_files: Vec<SecretFile>,
    /// `secrets/api_key`.
    pub(crate) api_key: SecretFile,
    /// `secrets/tls/ca.crt`.
    pub(crate) ca_cert: SecretFile,
    /// `secrets/tls/client.crt` and `client.key`.
    pub(crate) client_tls: Vec<SecretFile>,
    /// `secrets/tls/node.crt` and `node.key` (cluster only).
    pub(crate) node_tls: Vec<SecretFile>,
    /// `secrets/redis_admin_password` (cluster only: the formation Job's).
    pub(crate) admin_password: Option<SecretFile>,
}

impl Source {
    /// Reads `dir`.
    pub(crate) fn read(dir: &Path) -> Result<Self> {
        for required in [
            layout::ENV_FILE,
            layout::REDIS_SECRETS_DIR,
            layout::BACKEND_SECRETS_DIR,
            layout::CA_CERT,
            layout::SERVER_CERT,
            layout::SERVER_KEY,
        ] {
            if !dir.join(required).exists() {
                return Err(Error::NotADeployment {
                    path: dir.to_path_buf(),
                    missing: required,
                });
            }
        }
        let cluster = cluster_dir::cluster_record(dir)?;
        let redis_files = directory_files(dir, layout::REDIS_SECRETS_DIR)?;
        let backend_files = directory_files(dir, layout::BACKEND_SECRETS_DIR)?;
        let api_key = file(dir, layout::API_KEY)?;
        let ca_cert = file(dir, layout::CA_CERT)?;
        let client_tls = vec![
            file(dir, layout::CLIENT_CERT)?,
            file(dir, layout::CLIENT_KEY)?,
        ];
        let (node_tls, admin_password) = if cluster.is_some() {
            (
                vec![
                    file(dir, cluster_dir::NODE_CERT)?,
                    file(dir, cluster_dir::NODE_KEY)?,
                ],
                Some(file(dir, layout::ADMIN_PASSWORD)?),
            )
        } else {
            (Vec::new(), None)
        };
        let settings = sealcache_config_gen::read_env_file(&dir.join(layout::ENV_FILE))?;
        let source = Self {
            dir: dir.to_path_buf(),
            cluster,
            settings,
            redis_files,
            backend_files,
            api_key,
            ca_cert,
            client_tls,
            node_tls,
            admin_password,
        };
        source.check_settings()?;
        Ok(source)
    }

    /// Every secret file's contents (for the check that no setting carries one).
    fn secret_values(&self) -> impl Iterator<Item = &[u8]> {
        self.redis_files
            .iter()
            .chain(&self.backend_files)
            .chain(std::iter::once(&self.api_key))
            .chain(&self.client_tls)
            .chain(&self.node_tls)
            .chain(&self.admin_password)
            .map(|f| f.contents.as_slice())
    }

    /// Refuses a `.env` that sets a secret variable or holds a secret file's value: it becomes
    /// a ConfigMap.
    fn check_settings(&self) -> Result<()> {
        for (name, value) in &self.settings {
            let trimmed = value.trim().as_bytes();
            // Plain `==` on secret bytes: the outcome only decides whether rendering refuses, and
            // the refusal names the variable, never the value.
            let holds_secret = !trimmed.is_empty()
                && self
                    .secret_values()
                    .any(|secret| secret.trim_ascii() == trimmed);
            if is_secret_variable(name) || holds_secret {
                return Err(Error::SecretInSettings {
                    variable: name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Reads `dir/relative` as a secret file named after its last component: no link followed below
/// `dir`, never waiting on a FIFO, a regular file of at most 16 MiB
/// ([`crate::runtime::read_bytes_below`]). A process in the backend owns files of `secrets/`;
/// a link it leaves there must never put a host file into a Secret.
pub(crate) fn file(dir: &Path, relative: &str) -> Result<SecretFile> {
    let path = dir.join(relative);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| is_secret_key(n))
        .ok_or_else(|| Error::UnsupportedFileName { path: path.clone() })?
        .to_owned();
    let contents = crate::runtime::read_bytes_below(dir, relative)?;
    Ok(SecretFile { name, contents })
}

/// Every file of the directory `relative` below `dir`, mounted whole (sorted by name), as compose
/// mounts it; subdirectories and an interrupted write's temporary file are left out. Anything
/// else that is not a regular file (a link, a FIFO) is an error, read as [`file`] reads.
fn directory_files(dir: &Path, relative: &str) -> Result<Vec<SecretFile>> {
    let listed = dir.join(relative);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&listed).map_err(io("read", &listed))? {
        let entry = entry.map_err(io("read", &listed))?;
        let path = entry.path();
        // The entry's own type: a link is never followed to learn what it points at.
        if entry.file_type().map_err(io("read", &path))?.is_dir() {
            continue;
        }
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| Error::UnsupportedFileName { path: path.clone() })?;
        if name.ends_with(TMP_SUFFIX) {
            continue;
        }
        names.push(name);
    }
    names.sort();
    names
        .iter()
        .map(|name| file(dir, &format!("{relative}/{name}")))
        .collect::<Result<Vec<_>>>()
}

/// A name a Secret accepts as a key: `[-._a-zA-Z0-9]+`, not `.` or `..`.
pub(crate) fn is_secret_key(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name != "."
        && name != ".."
        && !name.starts_with("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
