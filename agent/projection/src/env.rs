//! A container's environment, built as the kubelet's makeEnvironmentVariables builds it: `envFrom`
//! sources in order, then `env` entries in order (a later definition replaces an earlier one), values
//! expanded against what is defined so far and the service env, and last the service env vars the
//! container did not define itself.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVarSource, Secret};
use thiserror::Error;

use crate::expansion::expand;
use crate::fieldpath::{self, FieldPathError};
use crate::{Lookup, PodContext};

/// Why a container cannot be created; the text is what the kubelet puts in the container's
/// `CreateContainerConfigError` message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvError {
    #[error("configmap \"{name}\" not found")]
    ConfigMapNotFound { name: String },
    #[error("secret \"{name}\" not found")]
    SecretNotFound { name: String },
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound { key: String, namespace: String, name: String },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound { key: String, namespace: String, name: String },
    #[error(transparent)]
    Field(#[from] FieldPathError),
}

/// The container's environment as `(name, value)` pairs, each name once. Names appear in the order
/// they were first defined (envFrom, then env), followed by the service env vars not overridden, in
/// the order given. `service_env` is what the caller computed for the pod's namespace (`FOO_SERVICE_HOST`
/// …); it is only merged here.
pub fn resolve(
    ctx: &PodContext,
    container: &Container,
    lookup: &dyn Lookup,
    service_env: &[(String, String)],
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = ctx.namespace();
    let mut objects = Objects { lookup, namespace, config_maps: HashMap::new(), secrets: HashMap::new() };
    let mut env = OrderedEnv::default();

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        if let Some(cm_ref) = &source.config_map_ref {
            let Some(cm) = objects.config_map(&cm_ref.name, cm_ref.optional.unwrap_or(false))? else { continue };
            for (key, value) in cm.data.iter().flatten() {
                env.set_from_source(format!("{prefix}{key}"), value.clone());
            }
        } else if let Some(secret_ref) = &source.secret_ref {
            let Some(secret) = objects.secret(&secret_ref.name, secret_ref.optional.unwrap_or(false))? else {
                continue;
            };
            for (key, value) in secret.data.iter().flatten() {
                env.set_from_source(format!("{prefix}{key}"), String::from_utf8_lossy(&value.0).into_owned());
            }
        }
    }

    let services: HashMap<&str, &str> = service_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for var in container.env.iter().flatten() {
        let value = match (var.value.as_deref(), &var.value_from) {
            (Some(value), _) if !value.is_empty() => {
                expand(value, |name| env.get(name).or_else(|| services.get(name).copied()).map(str::to_owned))
            }
            (_, Some(source)) => match value_from(ctx, container, &mut objects, source)? {
                Some(value) => value,
                // An optional reference to something missing defines nothing.
                None => continue,
            },
            _ => String::new(),
        };
        env.set(var.name.clone(), value);
    }

    let mut result = env.into_pairs();
    let defined: std::collections::HashSet<String> = result.iter().map(|(k, _)| k.clone()).collect();
    let mut appended = std::collections::HashSet::new();
    for (name, value) in service_env {
        if !defined.contains(name) && appended.insert(name.as_str()) {
            result.push((name.clone(), value.clone()));
        }
    }
    Ok(result)
}

fn value_from(
    ctx: &PodContext,
    container: &Container,
    objects: &mut Objects,
    source: &EnvVarSource,
) -> Result<Option<String>, EnvError> {
    if let Some(field) = &source.field_ref {
        return Ok(Some(fieldpath::pod_field_selector(ctx, field)?));
    }
    if let Some(res) = &source.resource_field_ref {
        let target = match res.container_name.as_deref() {
            None | Some("") => container,
            Some(name) => fieldpath::container_by_name(ctx.pod, name)?,
        };
        return Ok(Some(fieldpath::resource_field(ctx, target, &res.resource, res.divisor.as_ref())?));
    }
    let namespace = objects.namespace;
    if let Some(sel) = &source.config_map_key_ref {
        let optional = sel.optional.unwrap_or(false);
        let Some(cm) = objects.config_map(&sel.name, optional)? else { return Ok(None) };
        return match cm.data.as_ref().and_then(|d| d.get(&sel.key)) {
            Some(value) => Ok(Some(value.clone())),
            None if optional => Ok(None),
            None => Err(EnvError::ConfigMapKeyNotFound {
                key: sel.key.clone(),
                namespace: namespace.to_string(),
                name: sel.name.clone(),
            }),
        };
    }
    if let Some(sel) = &source.secret_key_ref {
        let optional = sel.optional.unwrap_or(false);
        let Some(secret) = objects.secret(&sel.name, optional)? else { return Ok(None) };
        return match secret.data.as_ref().and_then(|d| d.get(&sel.key)) {
            Some(value) => Ok(Some(String::from_utf8_lossy(&value.0).into_owned())),
            None if optional => Ok(None),
            None => Err(EnvError::SecretKeyNotFound {
                key: sel.key.clone(),
                namespace: namespace.to_string(),
                name: sel.name.clone(),
            }),
        };
    }
    // A valueFrom with no source set: the variable is defined and empty.
    Ok(Some(String::new()))
}

/// The objects one resolution reads, each fetched once so every reference sees the same version.
struct Objects<'a> {
    lookup: &'a dyn Lookup,
    namespace: &'a str,
    config_maps: HashMap<String, ConfigMap>,
    secrets: HashMap<String, Secret>,
}

impl Objects<'_> {
    /// `Ok(None)` when the object is missing and the reference is optional.
    fn config_map(&mut self, name: &str, optional: bool) -> Result<Option<&ConfigMap>, EnvError> {
        if !self.config_maps.contains_key(name) {
            match self.lookup.config_map(self.namespace, name) {
                Some(cm) => {
                    self.config_maps.insert(name.to_string(), cm);
                }
                None if optional => return Ok(None),
                None => return Err(EnvError::ConfigMapNotFound { name: name.to_string() }),
            }
        }
        Ok(self.config_maps.get(name))
    }

    fn secret(&mut self, name: &str, optional: bool) -> Result<Option<&Secret>, EnvError> {
        if !self.secrets.contains_key(name) {
            match self.lookup.secret(self.namespace, name) {
                Some(secret) => {
                    self.secrets.insert(name.to_string(), secret);
                }
                None if optional => return Ok(None),
                None => return Err(EnvError::SecretNotFound { name: name.to_string() }),
            }
        }
        Ok(self.secrets.get(name))
    }
}

/// Name → value with first-definition order kept, so the result is deterministic (upstream's order
/// is a Go map's, i.e. none).
#[derive(Default)]
struct OrderedEnv {
    pairs: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl OrderedEnv {
    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.pairs[i].1.as_str())
    }

    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.pairs[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.pairs.len());
                self.pairs.push((name, value));
            }
        }
    }

    /// envFrom keys: v1.32's kubelet (RelaxedEnvironmentVariableValidation, on by default) takes every
    /// key that is a relaxed env var name and skips the rest.
    fn set_from_source(&mut self, name: String, value: String) {
        if is_relaxed_env_var_name(&name) {
            self.set(name, value);
        }
    }

    fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }
}

/// `validation.IsRelaxedEnvVarName`: printable ASCII other than `=`.
fn is_relaxed_env_var_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}
