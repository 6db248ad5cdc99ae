//! `$(VAR)` references in env values, command and args, as upstream's
//! third_party/forked/golang/expansion defines them: `$$` is an escaped `$`, a reference that cannot
//! be resolved (or is never closed) stays as written, and nothing else about `$` is special.

/// Expands the `$(NAME)` references in `input`; `mapping` returns `None` for an unknown name.
pub fn expand<F, S>(input: &str, mut mapping: F) -> String
where
    F: FnMut(&str) -> Option<S>,
    S: AsRef<str>,
{
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    // Slicing is only ever done next to an ASCII `$`, `(` or `)`, which are char boundaries.
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let consumed = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest[1..].find(')') {
                    Some(close) => {
                        let name = &rest[1..1 + close];
                        match mapping(name) {
                            Some(value) => out.push_str(value.as_ref()),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 2
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                // A lone `$`: keep it; the character after it is copied as ordinary text.
                _ => {
                    out.push('$');
                    0
                }
            };
            cursor += consumed;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint..]);
    out
}

/// Expands against a resolved environment, as the kubelet does for `command`, `args` and `subPathExpr`.
pub fn expand_with_env(input: &str, env: &[(String, String)]) -> String {
    // The last definition of a name wins, as when the list is turned into a map upstream.
    expand(input, |name| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    // The cases of upstream's expand_test.go (doExpansionTest).
    const CASES: &[(&str, &str, &str)] = &[
        ("whole string", "$(VAR_A)", "A"),
        ("repeat", "$(VAR_A)-$(VAR_A)", "A-A"),
        ("beginning", "$(VAR_A)-1", "A-1"),
        ("middle", "___$(VAR_B)___", "___B___"),
        ("end", "___$(VAR_C)", "___C"),
        ("compound", "$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
        ("escape & expand", "$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
        ("compound escape", "$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
        ("mixed in escapes", "f000-$$VAR_A", "f000-$VAR_A"),
        ("backslash escape ignored", "foo\\$(VAR_C)bar", "foo\\Cbar"),
        ("backslash escape ignored 2", "foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
        ("lots of backslashes", "foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
        ("nested var references", "$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
        ("nested var references second type", "$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
        ("value is a reference", "$(VAR_REF)", "$(VAR_A)"),
        ("value is a reference x 2", "%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"),
        ("empty var", "foo$(VAR_EMPTY)bar", "foobar"),
        ("unterminated expression", "foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
        ("expression without operator", "f00__(VAR_A)__", "f00__(VAR_A)__"),
        ("shell special vars pass through", "$?_boo_$!", "$?_boo_$!"),
        ("bare operators are ignored", "$VAR_A", "$VAR_A"),
        ("undefined vars are passed through", "$(VAR_DNE)", "$(VAR_DNE)"),
        ("multiple (even) operators, var undefined", "$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
        ("multiple (even) operators, var defined", "$$$$$$(VAR_A)", "$$$(VAR_A)"),
        ("multiple (odd) operators, var undefined", "$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
        ("multiple (odd) operators, var defined", "$$$$$$$(VAR_A)", "$$$A"),
        ("missing open expression", "$VAR_A)", "$VAR_A)"),
        ("shell syntax ignored", "${VAR_A}", "${VAR_A}"),
        ("trailing incomplete expression not consumed", "$(VAR_B)_______$(A", "B_______$(A"),
        ("trailing incomplete expression, no content", "$(VAR_C)_______$(", "C_______$("),
        ("operator at end of input string is preserved", "$(VAR_A)foobarzab$", "Afoobarzab$"),
        ("shell escaped incomplete expr", "foo-\\$(VAR_A", "foo-\\$(VAR_A"),
        ("lots of $( in middle", "--$($($($($--", "--$($($($($--"),
        ("lots of $( in beginning", "$($($($($--foo$(", "$($($($($--foo$("),
        ("lots of $( at end", "foo0--$($($($(", "foo0--$($($($("),
        ("escaped operators in variable names are not escaped", "$(foo$$var)", "$(foo$$var)"),
        ("newline not expanded", "\n", "\n"),
        ("non-ascii around references", "é$(VAR_A)ü$ß", "éAü$ß"),
        ("non-ascii variable name", "$(VÄR)", "ö"),
    ];

    fn context() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
            ("VÄR", "ö"),
        ])
    }

    #[test]
    fn upstream_expansion_cases() {
        let ctx = context();
        for (name, input, expected) in CASES {
            assert_eq!(expand(input, |n| ctx.get(n).copied()), *expected, "{name}");
        }
    }

    #[test]
    fn expand_with_env_uses_the_last_definition() {
        let env = vec![("A".to_string(), "1".to_string()), ("A".to_string(), "2".to_string())];
        assert_eq!(expand_with_env("x$(A)y$(B)", &env), "x2y$(B)");
    }
}
