//! Joining k3s-style against the real binary: the CA from /cacerts matches the hash in the token,
//! the token buys node certificates for CSRs, and the client certificate is `system:node:<name>`.

mod support;

use sha2::{Digest, Sha256};
use support::node::{basic, csr, join, request, Identity};
use support::Server;

fn kubeconfig_for(s: &Server, id: &Identity) -> std::path::PathBuf {
    use base64::Engine;
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://127.0.0.1:{}\n  name: c\n\
         contexts:\n- context:\n    cluster: c\n    user: u\n  name: c\ncurrent-context: c\nusers:\n- name: u\n  user:\n    \
         client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&s.ca_pem()),
        s.port(),
        b64(&id.cert),
        b64(&id.key)
    );
    support::write(s.dir.path(), "node-kubeconfig", &text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_buys_node_certificates() {
    let mut s = Server::start();
    let token = s.token();

    // Anyone may fetch the CA; the token pins exactly those bytes.
    let ca = request(s.port(), &s.ca_pem(), None, "GET", "/cacerts", &[], "").await;
    assert_eq!(ca.status, 200);
    assert_eq!(ca.body, s.ca_pem());
    let hash: String = Sha256::digest(ca.body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let secret =
        token.strip_prefix(&format!("K10{hash}::server:")).expect("token is K10<hash of /cacerts>::server:<secret>");

    // Both the secret and the whole token are accepted as the password.
    let joined = join(&s, "n1", &["127.0.0.1", "n1"], secret).await.unwrap_or_else(|r| panic!("{}", r.body));
    join(&s, "n2", &["10.0.0.6"], &token).await.unwrap_or_else(|r| panic!("{}", r.body));

    let kc = kubeconfig_for(&s, &joined.client);
    let kc = kc.to_str().unwrap();
    let out = s.kubectl_in(
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"],
        None,
        &[("KUBECONFIG", kc)],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("system:node:n1 "), "{text}");
    assert!(text.contains("\"system:nodes\""), "{text}");

    // The secret survives a restart.
    s.restart();
    assert_eq!(s.token(), token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_join_requests_are_refused() {
    let s = Server::start();
    let token = s.token();
    let secret = token.rsplit(':').next().unwrap().to_string();

    for password in ["wrong", "", &format!("{secret}x")] {
        let r = join(&s, "n1", &["127.0.0.1"], password).await.err().expect("refused");
        assert_eq!(r.status, 401, "{password}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["reason"], "Unauthorized");
    }
    let missing = request(s.port(), &s.ca_pem(), None, "POST", "/v1-edge/node-certs", &[], "{}").await;
    assert_eq!(missing.status, 401);

    let auth = basic("node", &secret);
    let (good, _) = csr("n1");
    let cases = [
        (serde_json::json!({"nodeName": "Bad_Name", "clientCsr": good, "servingCsr": good}), "nodeName"),
        (serde_json::json!({"nodeName": "n1", "clientCsr": "not a csr", "servingCsr": good}), "clientCsr"),
        (
            serde_json::json!({"nodeName": "n1", "clientCsr": good, "servingCsr": good, "addresses": ["a b"]}),
            "addresses",
        ),
    ];
    for (body, field) in cases {
        let r = request(
            s.port(),
            &s.ca_pem(),
            None,
            "POST",
            "/v1-edge/node-certs",
            &[("authorization", &auth)],
            &body.to_string(),
        )
        .await;
        assert_eq!(r.status, 400, "{field}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["reason"], "BadRequest");
        assert!(v["message"].as_str().unwrap().starts_with(field), "{}", r.body);
    }

    // Without a client certificate everything else still needs one.
    let r = request(s.port(), &s.ca_pem(), None, "GET", "/api/v1/namespaces", &[], "").await;
    assert_eq!(r.status, 401);
}
