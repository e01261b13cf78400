//! A value quoted in a message, cut after `SHOWN` characters: a message
//! never echoes a long argument back whole (a 1 MB behaviour name would
//! make a 1 MB ERROR, written to the server log too).

pub const SHOWN: usize = 64;

/// `"value"`, or `"first 64 characters…" (N bytes)`.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(SHOWN) {
        None => format!("\"{value}\""),
        Some((at, _)) => format!("\"{}…\" ({} bytes)", &value[..at], value.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_whole_long_ones_cut_on_a_character() {
        assert_eq!(quoted("click"), "\"click\"");
        let long = "é".repeat(100);
        assert_eq!(
            quoted(&long),
            format!("\"{}…\" (200 bytes)", "é".repeat(64))
        );
        assert_eq!(quoted(&"x".repeat(64)), format!("\"{}\"", "x".repeat(64)));
    }
}
