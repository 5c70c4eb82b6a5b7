//! Control messages: the agent's hello, the aggregator's acknowledgements and requests, and
//! enrollment (a join token exchanged for a client certificate), and executor traffic.

use flatbuffers::FlatBufferBuilder;

use crate::{
    decode::{DecodeError, Limits, verified},
    fb,
};

/// One message on a control stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// First message of an agent on its control stream; `discovery` is the `zk://` address
    /// it found the aggregator through, if it did so through ZooKeeper.
    Hello {
        agent_id: String,
        version: String,
        discovery: Option<String>,
    },
    /// Reports up to `sequence` are applied.
    Ack { sequence: u64 },
    /// The aggregator needs a full report next.
    RequestFull,
    /// Join protocol: a token asks for a client certificate.
    Enroll { token: String, hostname: String },
    /// Join protocol: the certificate and key the agent presents from now on.
    Enrolled {
        agent_id: String,
        certificate_pem: String,
        private_key_pem: String,
    },
    /// The sender refuses the peer and is about to close; a standby aggregator names the
    /// leader's QUIC address to report to instead.
    Refused {
        reason: String,
        leader: Option<String>,
    },
    /// Executor traffic: the JSON of an [`AgentMessage`](crate::exec::AgentMessage) or a
    /// [`MasterMessage`](crate::exec::MasterMessage), by direction.
    Executor { json: String },
}

impl Control {
    pub fn encode(&self) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::new();
        let (body_type, body) = match self {
            Self::Hello {
                agent_id,
                version,
                discovery,
            } => {
                let args = fb::HelloArgs {
                    agent_id: Some(fbb.create_string(agent_id)),
                    version: Some(fbb.create_string(version)),
                    discovery: discovery.as_deref().map(|d| fbb.create_string(d)),
                };
                (
                    fb::ControlBody::Hello,
                    fb::Hello::create(&mut fbb, &args).as_union_value(),
                )
            }
            Self::Ack { sequence } => {
                let args = fb::AckArgs {
                    sequence: *sequence,
                };
                (
                    fb::ControlBody::Ack,
                    fb::Ack::create(&mut fbb, &args).as_union_value(),
                )
            }
            Self::RequestFull => {
                let args = fb::RequestFullArgs {};
                let body = fb::RequestFull::create(&mut fbb, &args).as_union_value();
                (fb::ControlBody::RequestFull, body)
            }
            Self::Enroll { token, hostname } => {
                let args = fb::EnrollArgs {
                    token: Some(fbb.create_string(token)),
                    hostname: Some(fbb.create_string(hostname)),
                };
                (
                    fb::ControlBody::Enroll,
                    fb::Enroll::create(&mut fbb, &args).as_union_value(),
                )
            }
            Self::Enrolled {
                agent_id,
                certificate_pem,
                private_key_pem,
            } => {
                let args = fb::EnrolledArgs {
                    agent_id: Some(fbb.create_string(agent_id)),
                    certificate_pem: Some(fbb.create_string(certificate_pem)),
                    private_key_pem: Some(fbb.create_string(private_key_pem)),
                };
                let body = fb::Enrolled::create(&mut fbb, &args).as_union_value();
                (fb::ControlBody::Enrolled, body)
            }
            Self::Refused { reason, leader } => {
                let args = fb::RefusedArgs {
                    reason: Some(fbb.create_string(reason)),
                    leader: leader.as_deref().map(|l| fbb.create_string(l)),
                };
                (
                    fb::ControlBody::Refused,
                    fb::Refused::create(&mut fbb, &args).as_union_value(),
                )
            }
            Self::Executor { json } => {
                let args = fb::ExecutorArgs {
                    json: Some(fbb.create_string(json)),
                };
                (
                    fb::ControlBody::Executor,
                    fb::Executor::create(&mut fbb, &args).as_union_value(),
                )
            }
        };
        let root = fb::Control::create(
            &mut fbb,
            &fb::ControlArgs {
                body_type,
                body: Some(body),
            },
        );
        fbb.finish(root, None);
        fbb.finished_data().to_vec()
    }

    /// Verifies and decodes one control message.
    pub fn decode(buf: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        let control = verified(buf, limits, flatbuffers::root_with_opts::<fb::Control<'_>>)?;
        let text = |s: Option<&str>, field| s.map(str::to_owned).ok_or(DecodeError::Missing(field));
        let missing = DecodeError::Missing("control.body");
        Ok(match control.body_type() {
            fb::ControlBody::Hello => {
                let hello = control.body_as_hello().ok_or(missing)?;
                Self::Hello {
                    agent_id: text(hello.agent_id(), "hello.agent_id")?,
                    version: text(hello.version(), "hello.version")?,
                    discovery: hello.discovery().map(str::to_owned),
                }
            }
            fb::ControlBody::Ack => Self::Ack {
                sequence: control.body_as_ack().ok_or(missing)?.sequence(),
            },
            fb::ControlBody::RequestFull => Self::RequestFull,
            fb::ControlBody::Enroll => {
                let enroll = control.body_as_enroll().ok_or(missing)?;
                Self::Enroll {
                    token: text(enroll.token(), "enroll.token")?,
                    hostname: text(enroll.hostname(), "enroll.hostname")?,
                }
            }
            fb::ControlBody::Enrolled => {
                let enrolled = control.body_as_enrolled().ok_or(missing)?;
                Self::Enrolled {
                    agent_id: text(enrolled.agent_id(), "enrolled.agent_id")?,
                    certificate_pem: text(enrolled.certificate_pem(), "enrolled.certificate_pem")?,
                    private_key_pem: text(enrolled.private_key_pem(), "enrolled.private_key_pem")?,
                }
            }
            fb::ControlBody::Refused => {
                let refused = control.body_as_refused().ok_or(missing)?;
                Self::Refused {
                    reason: text(refused.reason(), "refused.reason")?,
                    leader: refused.leader().map(str::to_owned),
                }
            }
            fb::ControlBody::Executor => Self::Executor {
                json: text(
                    control.body_as_executor().ok_or(missing)?.json(),
                    "executor.json",
                )?,
            },
            other => {
                return Err(DecodeError::UnknownValue {
                    what: "control body",
                    value: other.0.into(),
                });
            }
        })
    }
}
