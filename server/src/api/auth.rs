//! Who is calling: the identity in the client certificate (CN = user, O = groups), as upstream's
//! x509 authenticator reads it. Authorization is not enforced yet: every authenticated user may do
//! everything, which is what SelfSubjectAccessReview answers.

use rustls::server::ServerConnection;
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    /// The groups upstream reports for this user, with the implicit system:authenticated.
    pub fn all_groups(&self) -> Vec<String> {
        let mut g = self.groups.clone();
        g.push("system:authenticated".into());
        g
    }
}

pub fn from_tls(conn: &ServerConnection) -> Option<User> {
    let cert = conn.peer_certificates()?.first()?;
    from_der(cert.as_ref())
}

pub fn from_der(der: &[u8]) -> Option<User> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    Some(User { name, groups })
}
