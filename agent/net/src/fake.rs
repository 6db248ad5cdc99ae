//! A recording fake of [`NetLink`]: keeps a small in-memory model of links and overlay entries
//! and logs every call, so planner tests can assert both the calls made and the end state.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};

use crate::error::{NetError, Result};
use crate::netlink::{BridgeSpec, LinkInfo, NetLink, VethSpec, VxlanSpec};
use crate::overlay::{Change, Entry};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    EnsureBridge(BridgeSpec),
    AddVeth(VethSpec),
    DeleteLink(String),
    EnsureVxlan(VxlanSpec),
    Apply(Change),
    Sysctl(String, String),
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub links: BTreeMap<String, LinkInfo>,
    /// Which link carries which address (the uplink lookup).
    pub addresses: BTreeMap<Ipv4Addr, String>,
    pub entries: BTreeSet<Entry>,
    pub calls: Vec<Call>,
    next_index: u32,
}

#[derive(Debug, Default)]
pub struct RecordingNetLink {
    state: Mutex<FakeState>,
}

impl RecordingNetLink {
    /// A node with one uplink `name` carrying `ip`.
    pub fn with_uplink(name: &str, ip: Ipv4Addr, mtu: u32) -> Self {
        let fake = Self::default();
        {
            let mut s = fake.state();
            let index = s.alloc_index();
            s.links.insert(name.to_string(), LinkInfo { index, name: name.to_string(), mtu, mac: None });
            s.addresses.insert(ip, name.to_string());
        }
        fake
    }

    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        // A test that panicked while holding the lock has already failed; keep the data usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drains the call log.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state().calls)
    }
}

impl FakeState {
    fn alloc_index(&mut self) -> u32 {
        self.next_index += 1;
        self.next_index
    }

    fn upsert_link(&mut self, name: &str, mtu: u32) -> LinkInfo {
        if let Some(l) = self.links.get_mut(name) {
            l.mtu = mtu;
            return l.clone();
        }
        let index = self.alloc_index();
        let mac = [0x0a, 0x58, 0, 0, 0, index as u8];
        let info = LinkInfo { index, name: name.to_string(), mtu, mac: Some(mac) };
        self.links.insert(name.to_string(), info.clone());
        info
    }
}

impl NetLink for RecordingNetLink {
    async fn link(&self, name: &str) -> Result<Option<LinkInfo>> {
        Ok(self.state().links.get(name).cloned())
    }

    async fn link_with_address(&self, ip: Ipv4Addr) -> Result<Option<LinkInfo>> {
        let s = self.state();
        Ok(s.addresses.get(&ip).and_then(|n| s.links.get(n)).cloned())
    }

    async fn ensure_bridge(&self, spec: &BridgeSpec) -> Result<LinkInfo> {
        let mut s = self.state();
        s.calls.push(Call::EnsureBridge(spec.clone()));
        s.addresses.insert(spec.address.addr(), spec.name.clone());
        Ok(s.upsert_link(&spec.name, spec.mtu))
    }

    async fn add_veth_into_netns(&self, spec: &VethSpec) -> Result<()> {
        let mut s = self.state();
        s.calls.push(Call::AddVeth(spec.clone()));
        if !s.links.contains_key(&spec.bridge) {
            return Err(NetError::LinkNotFound(spec.bridge.clone()));
        }
        s.upsert_link(&spec.host_ifname, spec.mtu);
        Ok(())
    }

    async fn delete_link(&self, name: &str) -> Result<bool> {
        let mut s = self.state();
        s.calls.push(Call::DeleteLink(name.to_string()));
        let existed = s.links.remove(name).is_some();
        s.addresses.retain(|_, l| l != name);
        if existed && name == crate::overlay::VXLAN_NAME {
            // The kernel drops a device's routes, neighbours and FDB entries with it.
            s.entries.clear();
        }
        Ok(existed)
    }

    async fn ensure_vxlan(&self, spec: &VxlanSpec) -> Result<LinkInfo> {
        let mut s = self.state();
        s.calls.push(Call::EnsureVxlan(spec.clone()));
        s.addresses.insert(spec.vtep_address.addr(), spec.name.clone());
        Ok(s.upsert_link(&spec.name, spec.mtu))
    }

    async fn overlay_entries(&self, _vxlan_index: u32) -> Result<Vec<Entry>> {
        Ok(self.state().entries.iter().copied().collect())
    }

    async fn apply(&self, _vxlan_index: u32, change: &Change) -> Result<()> {
        let mut s = self.state();
        s.calls.push(Call::Apply(*change));
        match change {
            Change::Add(e) => s.entries.insert(*e),
            Change::Del(e) => s.entries.remove(e),
        };
        Ok(())
    }

    fn write_sysctl(&self, key: &str, value: &str) -> Result<bool> {
        self.state().calls.push(Call::Sysctl(key.to_string(), value.to_string()));
        Ok(true)
    }
}
