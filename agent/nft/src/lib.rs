//! nf_tables over netlink, without libnftnl or the `nft` binary.
//!
//! Build a [`Batch`] of changes from typed [`Table`]s, [`Chain`]s, [`Rule`]s and [`Set`]s,
//! then send it with [`NftSocket::apply`]: the kernel applies all of it or none of it, and an
//! error names the message it refused. Rules are built with nft's vocabulary and expand to the
//! same expressions `nft` would send, so `nft list ruleset` shows them as if written by hand.
//!
//! ```no_run
//! use edge_nft::*;
//! use std::net::{Ipv4Addr, SocketAddr};
//!
//! let t = Table::new(Family::Inet, "edge-proxy");
//! let pre = Chain::base(&t, "nat-prerouting", ChainType::Nat, Hook::Prerouting, priority::DSTNAT);
//! let svc = Chain::new(&t, "svc-web");
//! let ep = Chain::new(&t, "ep-web-0");
//! let map = Set::verdict_map(&t, "service-ips", &[KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService]);
//!
//! let mut b = Batch::new();
//! b.add_table(&t).add_chain(&pre).add_chain(&svc).add_chain(&ep);
//! let map_ref = b.add_set(&map);
//! b.add_rule(&Rule::new(&pre).vmap_daddr_proto_dport(&map_ref, false));
//! b.add_rule(&Rule::new(&ep).match_l4proto(proto::TCP).dnat(SocketAddr::from(([10, 42, 0, 5], 8080))));
//! let pick = b.add_anonymous_map(&t, &[KeyType::HostU32], vec![(Key::new().host_u32(0), Verdict::Goto("ep-web-0".into()))]);
//! b.add_rule(&Rule::new(&svc).numgen_vmap(1, &pick));
//! let key = Key::new().addr(Ipv4Addr::new(10, 43, 0, 20).into()).proto(proto::TCP).port(80);
//! b.add_elements(&map, &[Elem::verdict(key, Verdict::Goto("svc-web".into()))]);
//! NftSocket::new()?.apply(&b)?;
//! # Ok::<(), edge_nft::Error>(())
//! ```
//!
//! Modules: [`sys`] holds the kernel's numbers; `attr` the attribute tree; `expr` the kernel
//! expressions; `rule` the nft-style builder; `table` and `set` the objects; `batch` the
//! transaction and its encoding; `socket` the transport; `reply` and `list` the decoding of
//! acknowledgements and dumps.

mod attr;
mod batch;
mod error;
mod expr;
mod list;
mod message;
mod reply;
mod rule;
mod set;
mod socket;
pub mod sys;
mod table;

pub use batch::{Batch, Encoded, MAX_ELEMS_PER_MESSAGE};
pub use error::{Error, MessageError};
pub use expr::{CmpOp, CtKey, DynsetOp, Expr, MetaKey, NatType, PayloadBase, Reg, Reject, SetRef, Verdict};
pub use list::{ChainInfo, ElemInfo, RuleInfo, SetInfo, TableInfo};
pub use message::Message;
pub use rule::{ct_state, proto, Rule};
pub use set::{Elem, ElemData, Key, KeyType, MapData, Set};
pub use socket::NftSocket;
pub use table::{priority, BaseChain, Chain, ChainType, Family, Hook, Policy, Table};
