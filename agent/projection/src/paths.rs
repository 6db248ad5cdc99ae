//! The relative file paths a projected volume may contain, checked and cleaned as the kubelet's
//! atomic writer does before it writes anything (`..`-prefixed names are the writer's own).

use thiserror::Error;

const MAX_FILE_NAME_LENGTH: usize = 255;
const MAX_PATH_LENGTH: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("invalid path: must not be empty: \"\"")]
    Empty,
    #[error("invalid path: must be relative path: {0}")]
    Absolute(String),
    #[error("invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters")]
    TooLong,
    #[error("invalid path: must not contain '..': {0}")]
    DotDot(String),
    #[error("invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters")]
    NameTooLong,
    #[error("invalid path: must not start with '..': {0}")]
    Reserved(String),
}

/// Checks one payload path: relative, no `..` element, not under a `..name` of the writer.
pub fn validate(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute(path.to_string()));
    }
    if path.len() > MAX_PATH_LENGTH {
        return Err(PathError::TooLong);
    }
    for item in path.split('/') {
        if item == ".." {
            return Err(PathError::DotDot(path.to_string()));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return Err(PathError::NameTooLong);
        }
    }
    // `./..data` would clean to the writer's own name, so the first element that survives cleaning counts.
    let first = path.split('/').find(|item| !item.is_empty() && *item != ".").unwrap_or_default();
    if first.starts_with("..") {
        return Err(PathError::Reserved(path.to_string()));
    }
    Ok(())
}

/// `path.Clean` for a path that passed [`validate`]: no empty or `.` elements, no trailing slash.
pub fn clean(path: &str) -> String {
    let cleaned: Vec<&str> = path.split('/').filter(|item| !item.is_empty() && *item != ".").collect();
    if cleaned.is_empty() {
        ".".to_string()
    } else {
        cleaned.join("/")
    }
}

/// Validates and cleans in one step.
pub fn checked(path: &str) -> Result<String, PathError> {
    validate(path)?;
    let cleaned = clean(path);
    if cleaned == "." {
        return Err(PathError::Empty);
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_the_atomic_writer() {
        let long_name = "x".repeat(256);
        let long_path = "a/".repeat(2049);
        let cases: Vec<(&str, Result<String, PathError>)> = vec![
            ("key", Ok("key".into())),
            ("dir/key", Ok("dir/key".into())),
            ("./dir//key/", Ok("dir/key".into())),
            ("..key", Err(PathError::Reserved("..key".into()))),
            ("..data/x", Err(PathError::Reserved("..data/x".into()))),
            ("./..data", Err(PathError::Reserved("./..data".into()))),
            ("a/..b", Ok("a/..b".into())),
            ("..", Err(PathError::DotDot("..".into()))),
            ("a/../b", Err(PathError::DotDot("a/../b".into()))),
            ("/etc/passwd", Err(PathError::Absolute("/etc/passwd".into()))),
            ("", Err(PathError::Empty)),
            (".", Err(PathError::Empty)),
            (&long_name, Err(PathError::NameTooLong)),
            (&long_path, Err(PathError::TooLong)),
        ];
        for (input, expected) in cases {
            assert_eq!(checked(input), expected, "{input}");
        }
    }

    #[test]
    fn messages_match_upstream() {
        assert_eq!(checked("a/../b").unwrap_err().to_string(), "invalid path: must not contain '..': a/../b");
        assert_eq!(checked("/x").unwrap_err().to_string(), "invalid path: must be relative path: /x");
    }
}
