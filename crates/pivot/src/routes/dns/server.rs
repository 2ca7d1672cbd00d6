//! The DNS server: UDP and TCP on one address, each query answered from the
//! hubs' current tables (no cache but the table itself).

use super::answer::{Answer, Data, QType, Rcode, Rr, Zone};
use crate::config::DnsConfig;
use crate::routes::RouteHub;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, SRV};
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use pivot_core::routes::RouteTable;
use std::net::SocketAddr;
use std::time::Duration;

/// A TCP client that sends nothing for this long is disconnected.
const TCP_IDLE: Duration = Duration::from_secs(5);
/// Responses queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;
/// Bound on a graceful stop (open TCP connections); then they are dropped.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// A running DNS server; [`DnsServer::stop`] ends it.
pub struct DnsServer {
    server: Server<Handler>,
    addr: SocketAddr,
}

impl DnsServer {
    /// Bind UDP and TCP on `config.listen` and serve the zone for
    /// `clusters` (name, hub). With port 0, TCP takes the port UDP got.
    pub async fn start(config: &DnsConfig, clusters: Vec<(String, RouteHub)>) -> std::io::Result<DnsServer> {
        let udp = tokio::net::UdpSocket::bind(config.listen).await?;
        let addr = udp.local_addr()?;
        let tcp = tokio::net::TcpListener::bind(addr).await?;
        let ttl = u32::try_from(config.ttl.as_secs()).unwrap_or(u32::MAX);
        let mut server = Server::new(Handler { zone: Zone::new(&config.domain, ttl), clusters });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, TCP_RESPONSE_BUFFER);
        Ok(DnsServer { server, addr })
    }

    /// Where it listens (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn stop(mut self) {
        match tokio::time::timeout(STOP_WAIT, self.server.shutdown_gracefully()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("DNS server: {e}"),
            Err(_) => tracing::debug!("DNS server: open TCP connections dropped at shutdown"),
        }
    }
}

struct Handler {
    zone: Zone,
    clusters: Vec<(String, RouteHub)>,
}

impl Handler {
    /// The answer for the request's one question, from the tables as they
    /// are now; `Err`: a request pivot does not take.
    fn answer(&self, request: &Request) -> Result<Answer, ResponseCode> {
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return Err(ResponseCode::BADVERS);
        }
        if request.metadata.message_type != MessageType::Query {
            return Err(ResponseCode::FormErr);
        }
        if request.metadata.op_code != OpCode::Query {
            return Err(ResponseCode::NotImp);
        }
        let query = request.request_info().map_err(|_| ResponseCode::FormErr)?.query;
        if query.query_class() != DNSClass::IN {
            return Err(ResponseCode::Refused);
        }
        let labels: Vec<String> = query.name().iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
        let qtype = match query.query_type() {
            RecordType::A => QType::A,
            RecordType::AAAA => QType::Aaaa,
            RecordType::CNAME => QType::Cname,
            RecordType::SRV => QType::Srv,
            RecordType::SOA => QType::Soa,
            RecordType::NS => QType::Ns,
            RecordType::ANY => QType::Any,
            _ => QType::Other,
        };
        let tables: Vec<_> = self.clusters.iter().map(|(n, hub)| (n.as_str(), hub.current())).collect();
        let tables: Vec<(&str, &RouteTable)> = tables.iter().map(|(n, t)| (*n, &**t)).collect();
        Ok(self.zone.answer(&tables, &labels, qtype))
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        // EDNS as hickory's own catalog does it: version 0, at least 512.
        let mut edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e.set_version(0);
            e
        });
        let builder = |edns| MessageResponseBuilder::new(&request.queries, edns);
        let sent = match self.answer(request) {
            Err(code) => {
                if let Some(e) = edns.as_mut().filter(|_| code.high() != 0) {
                    e.set_rcode_high(code.high());
                }
                response.send_response(builder(edns.as_ref()).error_msg(&request.metadata, code)).await
            }
            Ok(answer) => {
                let records = |rrs: &[Rr]| rrs.iter().filter_map(record).collect::<Vec<_>>();
                let (answers, authority, additional) =
                    (records(&answer.answers), records(&answer.authority), records(&answer.additional));
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.authoritative = answer.authoritative();
                metadata.response_code = match answer.rcode {
                    Rcode::NoError => ResponseCode::NoError,
                    Rcode::NxDomain => ResponseCode::NXDomain,
                    Rcode::Refused => ResponseCode::Refused,
                };
                let msg = builder(edns.as_ref()).build(
                    metadata,
                    answers.iter(),
                    authority.iter(),
                    std::iter::empty(),
                    additional.iter(),
                );
                response.send_response(msg).await
            }
        };
        sent.unwrap_or_else(|e| {
            tracing::debug!("DNS: no response sent to {}: {e}", request.src());
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header { metadata, counts: Default::default() })
        })
    }
}

/// `rr` as hickory's record; `None` if a name in it is not a DNS name (a
/// host the configuration could not have checked).
fn record(rr: &Rr) -> Option<Record> {
    let name = |n: &str| Name::from_ascii(format!("{n}.")).ok();
    let data = match &rr.data {
        Data::A(ip) => RData::A(A(*ip)),
        Data::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        Data::Cname(t) => RData::CNAME(CNAME(name(t)?)),
        Data::Ns(t) => RData::NS(NS(name(t)?)),
        Data::Srv { priority, weight, port, target } => RData::SRV(SRV::new(*priority, *weight, *port, name(target)?)),
        Data::Soa { mname, rname, serial, refresh, retry, expire, minimum } => RData::SOA(SOA::new(
            name(mname)?,
            name(rname)?,
            *serial,
            *refresh as i32,
            *retry as i32,
            *expire as i32,
            *minimum,
        )),
    };
    Some(Record::from_rdata(name(&rr.name)?, rr.ttl, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::op::{Message, Query};
    use pivot_core::routes::EpochRecord;

    async fn ask(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        q.metadata.recursion_desired = true;
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf)).await.expect("answered").unwrap();
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(m.metadata.id, q.metadata.id);
        m
    }

    #[tokio::test]
    async fn answers_over_udp_from_the_current_table() {
        let hub = RouteHub::new();
        let config = DnsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            domain: "db.example".into(),
            ttl: Duration::from_secs(1),
        };
        let server = DnsServer::start(&config, vec![("main".into(), hub.clone())]).await.unwrap();
        let addr = server.local_addr();

        let m = ask(addr, "primary.main.db.example.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert!(m.answers.is_empty(), "no epoch yet: NODATA");
        assert!(matches!(m.authorities.first().map(|r| &r.data), Some(RData::SOA(_))), "{m:?}");

        let epoch =
            EpochRecord { number: 1, primary: "10.1.2.3:3310".parse().unwrap(), recovery_id: None, since_ms: 0 };
        assert!(hub.offer(RouteTable::derive(Some(&epoch), &pivot_core::ClusterView::default(), false, 10)));
        let m = ask(addr, "primary.main.db.example.", RecordType::A).await;
        let a: Vec<_> = m.answers.iter().map(|r| (r.name.to_ascii(), r.ttl, r.data.clone())).collect();
        assert_eq!(a, [("primary.main.db.example.".to_string(), 1, RData::A(A("10.1.2.3".parse().unwrap())))]);
        let m = ask(addr, "_mysql._tcp.primary.main.db.example.", RecordType::SRV).await;
        let Some(RData::SRV(srv)) = m.answers.first().map(|r| &r.data) else { panic!("{m:?}") };
        assert_eq!((srv.port, srv.target.to_ascii()), (3310, "10-1-2-3.main.db.example.".to_string()));
        assert_eq!(m.additionals.len(), 1, "the target's address: {m:?}");

        let m = ask(addr, "nosuch.db.example.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let m = ask(addr, "example.com.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(!m.metadata.authoritative);
        server.stop().await;
    }
}
