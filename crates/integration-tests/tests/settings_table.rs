//! docs/configuration.md's settings table is the one `sealcache_settings::markdown_table`
//! generates from the declarations. It reads the repository's docs, so it lives here rather than
//! in `sealcache-settings`. `UPDATE_EXPECT=1 cargo test -p sealcache-integration-tests --test
//! settings_table` rewrites the table after a declaration changed.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

const BEGIN: &str =
    "<!-- settings table: generated from crates/settings/src/settings/declared.rs -->\n";
const END: &str = "<!-- end of the generated settings table -->\n";

#[test]
fn the_docs_table_is_the_declarations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let docs = std::fs::read_to_string(&path).unwrap();
    let start = docs.find(BEGIN).expect("the table's start marker") + BEGIN.len();
    let end = start + docs[start..].find(END).expect("the table's end marker");
    let generated = sealcache_settings::markdown_table();
    if docs[start..end] == generated {
        return;
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        let updated = format!("{}{generated}{}", &docs[..start], &docs[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "docs/configuration.md's settings table differs from the declarations; run \
         UPDATE_EXPECT=1 cargo test -p sealcache-integration-tests --test settings_table"
    );
}
