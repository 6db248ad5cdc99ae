//! Who may use the API: a client certificate (already verified against the cluster CA by rustls) whose subject
//! names an allowed group in O, like the kubelet's authorizer admitting the apiserver's client identity.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// `Ok` with the subject's groups if one is allowed, else why not.
pub(crate) fn authorize(peer: Option<&[CertificateDer<'_>]>, allowed: &[String]) -> Result<Vec<String>, String> {
    let Some(leaf) = peer.and_then(|c| c.first()) else {
        return Err("no client certificate".into());
    };
    let (_, cert) =
        X509Certificate::from_der(leaf.as_ref()).map_err(|e| format!("unreadable client certificate: {e}"))?;
    let groups: Vec<String> =
        cert.subject().iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    if groups.iter().any(|g| allowed.contains(g)) {
        Ok(groups)
    } else {
        let cn = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or("").to_string();
        Err(format!("user {cn:?} (groups {groups:?}) is not allowed to use the kubelet API"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(orgs: &[&str]) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "someone");
        for o in orgs {
            params.distinguished_name.push(rcgen::DnType::OrganizationName, *o);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn requires_an_allowed_organization() {
        let allowed = vec!["system:masters".to_string(), "edge:apiserver".to_string()];
        let cases: Vec<(Vec<&str>, bool)> = vec![
            (vec!["edge:apiserver"], true),
            (vec!["other", "system:masters"], true),
            (vec!["system:nodes"], false),
            (vec![], false),
        ];
        for (orgs, ok) in cases {
            let c = [cert(&orgs)];
            assert_eq!(authorize(Some(&c), &allowed).is_ok(), ok, "{orgs:?}");
        }
        assert!(authorize(None, &allowed).is_err());
    }
}
