//! Integration tests of the published sealcache crates, kept out of their packages.
//!
//! They run against real `redis-server` instances started by the unpublished
//! `sealcache-testkit`, and the server's tests run the `sealcache-server` binary (built by cargo on
//! first use). A published crate's own tests must build from its `.crate` file alone, which a
//! dev-dependency on the test kit would prevent (`cargo package` drops it); `cargo xtask test`
//! checks this by unpacking each package and testing it.
//!
//! Layout: `tests/<crate>_<name>.rs` (for example `cache_redis_tls.rs`, `server_http.rs`), the
//! fixtures they share in `tests/common/`, and the load benchmarks `cache` and `server_load`
//! (`cargo xtask bench cache|server`). This library has no code.
