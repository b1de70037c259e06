//! The field path (`stages[1].prune.mode`) of a serde_json parse error: serde_json says the line
//! and column where it stopped; this walks the text up to there. (A path-tracking deserializer
//! wrapper did the same at about 120 KB of the wasm module, one copy of the recipe's parser more.)

/// A parse error of `text` as `Error::Recipe`, its path under `root` ("" for none).
pub fn error(text: &str, e: &serde_json::Error, root: &str) -> crate::Error {
    let path = path_at(text, e.line(), e.column(), e.to_string().starts_with("unknown variant"));
    let path = match (root, path.is_empty()) {
        ("", true) => "(top level)".to_string(),
        ("", false) => path,
        (_, true) => root.to_string(),
        (_, false) if path.starts_with('[') => format!("{root}{path}"),
        _ => format!("{root}.{path}"),
    };
    crate::Error::recipe(path, e.to_string())
}

enum Frame {
    Object { key: Option<String>, wants_key: bool },
    Array { index: usize },
}

/// The path of the value being read at `line`/`column` (1-based; the column counts bytes, as
/// serde_json's does). `variant`: the error is about an enum's variant name, which is a key of
/// the JSON object but not a field of the path.
pub fn path_at(text: &str, line: usize, column: usize, variant: bool) -> String {
    let start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    let end = (start + column).min(text.len());
    let b = text.as_bytes();
    let (mut stack, mut i, mut last_was_key, mut last_opened) = (Vec::<Frame>::new(), 0, false, false);
    while i < end {
        let c = b[i];
        i += 1;
        if c.is_ascii_whitespace() {
            continue;
        }
        (last_was_key, last_opened) = (false, c == b'{' || c == b'[');
        match c {
            b'"' => {
                let from = i;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let s = &text[from..i.min(b.len())];
                i += 1;
                if let Some(Frame::Object { key, wants_key: wants @ true }) = stack.last_mut() {
                    *key = Some(s.to_string());
                    *wants = false;
                    last_was_key = true;
                }
            }
            b'{' => stack.push(Frame::Object { key: None, wants_key: true }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, wants_key }) => (*key, *wants_key) = (None, true),
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            _ => {}
        }
    }
    // Stopped right after `{` or `[`: the error is about that value as a whole (a wrong type).
    if last_opened {
        stack.pop();
    }
    if variant && last_was_key {
        if let Some(Frame::Object { key, .. }) = stack.last_mut() {
            *key = None;
        }
    }
    let mut path = String::new();
    for f in &stack {
        match f {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::path_at;

    /// The path where serde_json stops on `text` (which must fail to parse as `T`).
    fn at<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
        let e = serde_json::from_str::<T>(text).unwrap_err();
        path_at(text, e.line(), e.column(), e.to_string().starts_with("unknown variant"))
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Op {
        Scale { by: f32 },
        Keep,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        sizes: Vec<u32>,
        ops: Vec<Op>,
        #[serde(default)]
        inner: Option<Box<Doc>>,
    }

    #[test]
    fn paths_name_the_field_index_and_nesting() {
        let ok = r#""name": "a", "sizes": [1], "ops": []"#;
        assert_eq!(at::<Doc>(&format!(r#"{{{ok}, "colour": 1}}"#)), "colour", "an unknown field is named");
        assert_eq!(at::<Doc>(r#"{"name": 3, "sizes": [], "ops": []}"#), "name", "a wrong type");
        assert_eq!(at::<Doc>("{\"name\": \"a\",\n  \"sizes\": [1, 2,\n -3], \"ops\": []}"), "sizes[2]", "an index, across lines");
        assert_eq!(at::<Doc>(&format!(r#"{{{ok}, "inner": {{"name": "b", "sizes": [], "ops": [{{"scale": {{"by": "x"}}}}]}}}}"#)), "inner.ops[0].scale.by");
        assert_eq!(at::<Doc>(&format!(r#"{{{ok}, "inner": {{"name": "b", "sizes": []}}}}"#)), "inner", "a missing field: the object that lacks it");
        assert_eq!(at::<Doc>(r#"{"name": "a", "sizes": [], "ops": ["keep", {"squash": 1}]}"#), "ops[1]", "an unknown variant is not a field");
        assert_eq!(at::<Doc>(r#"{"name": "a \"quoted\" name", "sizes": [1], "ops": ["kept"]}"#), "ops[0]", "escaped quotes inside a string");
        assert_eq!(at::<Doc>(r#"{"name": "a", "sizes": [1,"#), "sizes[1]", "text that ends early");
        assert_eq!(at::<Doc>("3"), "", "the top level");
        assert_eq!(at::<Doc>("[1]"), "[0]", "a struct read from a list: its first field");
        // Whatever the position, on any text: no panic (a backslash before a multi-byte character,
        // a string or text cut short, a position past the end).
        for text in ["{\"\\é\": 1}", "\"\\", "{\"a\\\"", "[\"ü\", {", "", "}}]]"] {
            for (line, column) in [(0, 0), (1, 1), (1, 3), (2, 1), (9, 99)] {
                path_at(text, line, column, true);
            }
        }
        assert_eq!(at::<Doc>(r#"{"name": "a", "sizes": {"a": 1}, "ops": []}"#), "sizes", "an object where a list belongs");
    }
}
