//! A throwaway PKI: a CA, and server/client certificates it signs.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub(crate) struct Ca {
    pub(crate) pem: String,
    pub(crate) der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

pub(crate) struct Leaf {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) cert_der: CertificateDer<'static>,
    pub(crate) key_der: Vec<u8>,
}

impl Leaf {
    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key_der.clone()).into()
    }
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub(crate) fn server(&self, names: &[&str]) -> Leaf {
        self.leaf(
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
            KeyPair::generate().unwrap(),
        )
    }

    /// A client certificate (fresh P-256 key).
    pub(crate) fn client(&self, name: &str) -> Leaf {
        self.client_with_key(name, KeyPair::generate().unwrap())
    }

    /// A client certificate for the given key.
    pub(crate) fn client_with_key(&self, name: &str, key: KeyPair) -> Leaf {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth, key)
    }

    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, key: KeyPair) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

/// A 2048-bit RSA key made once with `openssl genpkey` for these tests only
/// (ring cannot generate RSA keys).
pub(crate) const RSA_PKCS8_PEM: &str = include_str!("testdata/rsa-test-only.pk8.pem");

/// The algorithm-specific key inside a PKCS#8 key, as PEM with `label`: SEC1
/// `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`, the forms OpenSSL and
/// kubeadm write.
pub(crate) fn unwrap_pkcs8(pkcs8_der: &[u8], label: &str) -> String {
    // PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm SEQUENCE, privateKey OCTET STRING }
    let (_, body) = der_tlv(pkcs8_der, 0x30);
    let (rest, _version) = der_tlv(body, 0x02);
    let (rest, _algorithm) = der_tlv(rest, 0x30);
    let (_, inner) = der_tlv(rest, 0x04);
    pem(label, inner)
}

/// Splits one DER element of the expected tag off `input`: (rest, contents).
fn der_tlv(input: &[u8], tag: u8) -> (&[u8], &[u8]) {
    assert_eq!(input[0], tag, "unexpected DER tag");
    let (len, header) = match input[1] {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(input[2]), 3),
        0x82 => (usize::from(input[2]) << 8 | usize::from(input[3]), 4),
        other => panic!("unsupported DER length byte {other:#x}"),
    };
    (&input[header + len..], &input[header..header + len])
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = super::super::auth::base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
