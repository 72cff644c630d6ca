//! YAML emission: every object is a serde value written by `serde-saphyr`, never a text template.

use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The comment every rendered file opens with.
pub(crate) const HEADER: &str = "# Rendered by `cargo xtask k8s render` (sealcache-ops) from a\n\
     # deployment directory. Do not edit: render again. Changes of your own go\n\
     # in an overlay that uses this one.\n";

/// The emitter's options: two-space indentation, sequences indented under their key, long
/// strings as block scalars folded at 72 characters (so lines stay short for yamllint).
fn options() -> serde_saphyr::SerializerOptions {
    serde_saphyr::ser_options! {
        indent_step: 2,
        compact_list_indent: false,
        prefer_block_scalars: true,
        folded_wrap_chars: 72,
    }
}

/// One YAML document (`---` first) for `value`; `what` names it in an error.
fn document<T: Serialize>(value: &T, what: &str) -> Result<String> {
    let text = serde_saphyr::to_string_with_options(value, options()).map_err(|_| Error::Emit {
        what: what.to_owned(),
    })?;
    Ok(format!("---\n{text}"))
}

/// A file of non-secret objects: the header, then one document each.
pub(crate) fn file<T: Serialize>(objects: &[T], what: &str) -> Result<Vec<u8>> {
    let mut out = String::from(HEADER);
    for object in objects {
        out.push_str(&document(object, what)?);
    }
    Ok(out.into_bytes())
}

/// A file of Secret objects, built in zeroized memory (the serializer's own buffers are not
/// under our control; the result is).
pub(crate) fn secret_file<T: Serialize>(objects: &[T]) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(String::from(HEADER));
    for object in objects {
        let doc = Zeroizing::new(document(object, "a Secret")?);
        out.push_str(&doc);
    }
    Ok(Zeroizing::new(out.as_bytes().to_vec()))
}
