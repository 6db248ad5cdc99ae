//! JSON merge patch (RFC 7386), used for `application/merge-patch+json` (e.g. `kubectl scale`).

use serde_json::{Map, Value};

/// Applies `patch` to `original`: objects merge key by key, `null` deletes a key, anything
/// else (lists included) replaces the target.
pub fn merge_patch(original: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut target = match original {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            // shift_remove keeps the remaining keys in their order (swap_remove would not).
            target.shift_remove(key);
        } else {
            let merged = merge_patch(target.get(key).unwrap_or(&Value::Null), value);
            target.insert(key.clone(), merged);
        }
    }
    Value::Object(target)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        // The test vectors from RFC 7386 appendix A.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (json!({"a":"b","b":"c"}), json!({"a":null}), json!({"b":"c"})),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (json!({"a":{"b":"c"}}), json!({"a":{"b":"d","c":null}}), json!({"a":{"b":"d"}})),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (json!({}), json!({"a":{"bb":{"ccc":null}}}), json!({"a":{"bb":{}}})),
        ];
        for (original, patch, want) in cases {
            assert_eq!(merge_patch(&original, &patch), want, "patch {patch}");
        }
    }

    #[test]
    fn scale_keeps_key_order() {
        let original = json!({"spec":{"replicas":1,"selector":{},"template":{}}});
        let got = merge_patch(&original, &json!({"spec":{"replicas":3}}));
        let keys: Vec<_> = got["spec"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["replicas", "selector", "template"]);
        assert_eq!(got["spec"]["replicas"], 3);
    }
}
