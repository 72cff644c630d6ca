//! The developer's stacks from a checkout and the checks `cargo xtask test` runs on every stack.
//!
//! `cargo xtask` is the command line; this crate is what its developer tasks run: the local
//! stacks (`secure-up --local [--cluster]`: `redis-server` and the release server of the
//! checkout as local processes), and the test harnesses that drive every stack (compose and
//! local, one node and a cluster) from outside: the operator command on a running stack, a crash
//! and restart, rotation under load and interrupted after every step, the partition harness
//! (hosts as network namespaces), the Kubernetes manifests' offline checks, the feature matrix
//! and the Python package. The production stages themselves (up, verify, status, rotate, down)
//! are `sealcache_ops`'s, never written here.
//!
//! Every check is a [`verify::Check`]: a name, whether it passed, and what was seen.
//!
//! ```
//! let check = sealcache_devstack::verify::check("example", true, "seen".to_owned());
//! assert!(check.passed);
//! ```

// A developer tool: printing progress is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod cluster_local;
pub mod contract;
pub mod docker;
pub mod features;
pub mod http;
pub mod k8s_check;
pub mod local;
pub mod partitions;
pub mod progress;
pub mod python;
pub mod redis_install;
pub mod rotation;
pub mod stack_checks;
pub mod verify;
