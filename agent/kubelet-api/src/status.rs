//! Kubernetes `metav1.Status` objects: the HTTP error bodies, and the exec error-channel payloads.

use serde_json::{json, Value};

use crate::BackendError;

/// The reason upstream uses for an HTTP code.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        422 => "Invalid",
        _ => "InternalError",
    }
}

/// A complete Status as an HTTP body (with kind/apiVersion, like the apiserver's error replies).
pub(crate) fn failure_body(code: u16, message: &str) -> Vec<u8> {
    let v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason_for(code),
        "code": code,
    });
    v.to_string().into_bytes()
}

pub(crate) fn backend_code(e: &BackendError) -> u16 {
    match e {
        BackendError::NotFound(_) => 404,
        BackendError::BadRequest(_) => 400,
        BackendError::Internal(_) => 500,
    }
}

/// The error-channel Status for a finished exec, shaped as `json.Marshal(metav1.Status)` in kubelet's streaming
/// server: no kind/apiVersion, `metadata: {}`.
pub(crate) fn exec_exit(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    // Go's %v of a []string; the text is the CRI runtime's exit error as containerd words it.
    let cmd = format!("[{}]", command.join(" "));
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {cmd}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The error-channel Status for an exec that could not run.
pub(crate) fn exec_error(e: &BackendError) -> Value {
    match e {
        BackendError::Internal(msg) => {
            let msg = format!("error executing command in container: {msg}");
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {msg}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": msg}]},
                "code": 500,
            })
        }
        other => {
            let code = backend_code(other);
            json!({
                "metadata": {},
                "status": "Failure",
                "message": other.to_string(),
                "reason": reason_for(code),
                "code": code,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_match_upstream_bytes() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(exec_exit(&cmd, 0).to_string(), r#"{"metadata":{},"status":"Success"}"#);
        assert_eq!(
            exec_exit(&cmd, 3).to_string(),
            concat!(
                r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: "#,
                r#"error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","#,
                r#""details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
            )
        );
    }

    #[test]
    fn http_failure_has_kind_reason_and_code() {
        let v: Value = serde_json::from_slice(&failure_body(404, "pod \"x\" not found")).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NotFound");
        assert_eq!(v["code"], 404);
        assert_eq!(v["message"], "pod \"x\" not found");
        let v = exec_error(&BackendError::NotFound("container c not found".into()));
        assert_eq!(v["code"], 404);
        assert_eq!(v["reason"], "NotFound");
    }
}
