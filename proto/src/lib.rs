//! strata's wire format: the FlatBuffers schema of agent reports and control messages, its
//! generated code, and the frame codec for the QUIC streams. FlatBuffers types stay here; the
//! rest of the code works on its own Rust types.
