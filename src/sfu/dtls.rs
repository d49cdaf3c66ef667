//! The crypto provider every peer connection is built with: str0m's own (dimpl over AWS-LC
//! for DTLS, AWS-LC for SRTP), except that the DTLS configuration is made once per process and
//! shared, instead of once per peer connection.
//!
//! Building a dimpl configuration validates its crypto provider, and that validation runs a
//! test key exchange on every curve it supports (X25519, P-256, P-384): about 11 million
//! instructions, about a millisecond of the media thread for each participant that joins,
//! while everyone else's media waits. It depends on nothing per connection (the certificate is
//! handed to each DTLS instance separately), so one validated configuration serves them all.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
};
use str0m::crypto::{CryptoError, CryptoProvider};

/// The provider to give `RtcConfig::set_crypto_provider`.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            static DTLS: SharedConfigDtls = SharedConfigDtls;
            let mut provider = str0m::crypto::from_feature_flags();
            provider.dtls_provider = &DTLS;
            Arc::new(provider)
        })
        .clone()
}

/// str0m's DTLS provider with the configuration cached.
#[derive(Debug)]
struct SharedConfigDtls;

/// Built configurations by MTU (str0m passes the same one for every connection, but it is a
/// parameter, so it is part of the key).
static CONFIGS: Mutex<Vec<(Option<usize>, Arc<dimpl::Config>)>> = Mutex::new(Vec::new());

fn config(mtu: Option<usize>) -> Result<Arc<dimpl::Config>, CryptoError> {
    // Entries are pushed whole, so a poisoned lock still holds a consistent list.
    let mut configs = CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, config)) = configs.iter().find(|(m, _)| *m == mtu) {
        return Ok(config.clone());
    }
    // ICE has checked that the peer answers at its address before DTLS starts, which is what
    // a server cookie would prove, so the extra round trip buys nothing (str0m's choice too).
    let mut builder = dimpl::Config::builder().use_server_cookie(false);
    if let Some(mtu) = mtu {
        builder = builder.mtu(mtu);
    }
    let config = Arc::new(
        builder
            .build()
            .map_err(|e| CryptoError::Other(format!("DTLS configuration: {e}")))?,
    );
    configs.push((mtu, config.clone()));
    Ok(config)
}

impl DtlsProvider for SharedConfigDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let config = config(mtu)?;
        let dtls = match dtls_version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, cert.clone(), now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, cert.clone(), now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, cert.clone(), now),
            other => {
                return Err(CryptoError::Other(format!(
                    "unsupported DTLS version {other}"
                )));
            }
        };
        Ok(Box::new(Instance(dtls)))
    }
}

/// One connection's DTLS: dimpl's, behind str0m's trait.
struct Instance(dimpl::Dtls);

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The state holds keys; nothing of it belongs in a log.
        f.write_str("DtlsInstance")
    }
}

impl DtlsInstance for Instance {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        self.0.poll_output(buf)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.0.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.0.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.0.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.0.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.0.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_configuration_serves_every_connection_of_an_mtu() {
        let a = config(Some(1150)).unwrap();
        let b = config(Some(1150)).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "built twice");
        let c = config(Some(1200)).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "another MTU is another configuration");
    }

    /// What making a peer connection costs, with str0m's own provider and with this one (the
    /// same certificate for both). Prints; asserts no speed. `cargo test --release --lib
    /// peer_connection_setup_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, run by hand"]
    fn peer_connection_setup_cost() {
        const N: u32 = 200;
        let cert = crypto_provider()
            .dtls_provider
            .generate_certificate()
            .unwrap();
        for round in 0..2 {
            for shared in [false, true] {
                let started = Instant::now();
                for _ in 0..N {
                    let mut config = str0m::RtcConfig::new()
                        .set_dtls_cert(cert.clone())
                        .set_ice_lite(true)
                        .set_rtp_mode(true);
                    if shared {
                        config = config.set_crypto_provider(crypto_provider());
                    }
                    std::hint::black_box(config.build(Instant::now()));
                }
                let provider = if shared { "shared" } else { "str0m's" };
                println!(
                    "round {round}, {provider} DTLS configuration: {:?} per peer connection",
                    started.elapsed() / N
                );
            }
        }
    }
}
