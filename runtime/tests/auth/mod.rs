//! The harness of `auth_rules.rs`: storage and a scheduler in this process with credentials on
//! (random loopback ports, SQLite in a temp dir), two resource groups with a job of group A, the
//! tokens of every kind, and raw gRPC calls (encoded request bytes in, status out), so every RPC
//! goes through one code path.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use prost::bytes::{Buf, BufMut};
use rmpv::Value;
use silk_client::{GraphBuilder, encode_values};
use silk_core::graph::TypeDesc;
use silk_core::ids::SchedulerId;
use silk_runtime::auth::{Authority, GroupTokens, ServerSecurity, Token};
use silk_runtime::scheduler::{DispatchQueue, EmRegistry, RegistryConfig};
use silk_runtime::storage::db::{Secret, SqliteDb};
use silk_runtime::storage::{Storage, StorageConfig, grpc};
use silk_tdl::{JobId, ResourceGroupId};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The credentials every RPC is tried with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cred {
    None,
    Wrong,
    Cluster,
    Admin,
    GroupA,
    GroupB,
}

pub const CREDS: [Cred; 6] = [
    Cred::None,
    Cred::Wrong,
    Cred::Cluster,
    Cred::Admin,
    Cred::GroupA,
    Cred::GroupB,
];

/// Request bytes as they are, response bytes as they come.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

/// One call of `path` with `body`, sending `token`; the status it ended with, if any.
pub async fn call(
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> Option<Status> {
    let channel = grpc::connect(&format!("http://{addr}")).await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(body);
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let path = path.parse().unwrap();
    match client.server_streaming(request, path, Raw).await {
        Err(status) => Some(status),
        Ok(reply) => reply.into_inner().message().await.err(),
    }
}

/// A running storage and scheduler with their credentials.
pub struct Cluster {
    pub storage: SocketAddr,
    pub scheduler: SocketAddr,
    pub tokens: BTreeMap<&'static str, String>,
    pub group_a: ResourceGroupId,
    pub job_a: JobId,
    pub stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// The token `cred` stands for.
    pub fn token(&self, cred: Cred) -> Option<&str> {
        let key = match cred {
            Cred::None => return None,
            Cred::Wrong => "wrong",
            Cred::Cluster => "cluster",
            Cred::Admin => "admin",
            Cred::GroupA => "a",
            Cred::GroupB => "b",
        };
        Some(self.tokens[key].as_str())
    }
}

pub async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&dir.path().join("storage.db"))
        .await
        .unwrap();
    let storage = Storage::open(db, StorageConfig::default()).await.unwrap();
    let (cluster, admin) = (Token::generate().unwrap(), Token::generate().unwrap());
    let groups = GroupTokens::new(Token::generate().unwrap());
    let a = storage
        .add_resource_group("a", &Secret::new(b"secret-a".to_vec()))
        .await
        .unwrap();
    let b = storage
        .add_resource_group("b", &Secret::new(b"secret-b".to_vec()))
        .await
        .unwrap();
    let mut g = GraphBuilder::new();
    g.task("p", "f")
        .input(TypeDesc::Int64)
        .output(TypeDesc::Int64)
        .add();
    let graph = serde_json::to_string(&g.build().unwrap()).unwrap();
    let inputs = encode_values(&[Value::from(1)]).unwrap();
    let job_a = storage.register_job(a, &graph, &inputs).await.unwrap();
    let mut tokens = BTreeMap::new();
    tokens.insert("wrong", Token::generate().unwrap().expose().to_owned());
    tokens.insert("cluster", cluster.expose().to_owned());
    tokens.insert("admin", admin.expose().to_owned());
    tokens.insert("a", groups.issue(a).expose().to_owned());
    tokens.insert("b", groups.issue(b).expose().to_owned());
    let stop = CancellationToken::new();
    let storage_security = ServerSecurity::checking(Authority {
        cluster: Some(cluster.clone()),
        admin: Some(admin),
        groups: Some(groups),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let storage_addr = listener.local_addr().unwrap();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            grpc::serve_secured(storage, listener, &storage_security, stop.cancelled_owned())
                .await
                .unwrap();
        }
    });
    let scheduler_security = ServerSecurity::checking(Authority {
        cluster: Some(cluster),
        ..Authority::default()
    });
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let service = silk_runtime::scheduler::grpc::SchedulerService::new(
        SchedulerId(1),
        DispatchQueue::new(16),
        EmRegistry::new(RegistryConfig::default(), tx),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheduler_addr = listener.local_addr().unwrap();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            let _keep = _rx;
            silk_runtime::scheduler::grpc::serve(
                service,
                listener,
                &scheduler_security,
                stop.cancelled_owned(),
            )
            .await
            .unwrap();
        }
    });
    Cluster {
        storage: storage_addr,
        scheduler: scheduler_addr,
        tokens,
        group_a: a,
        job_a,
        stop,
        _dir: dir,
    }
}
