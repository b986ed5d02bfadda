"""Object identifiers used by CMP, CRMF and their algorithms, with human names.

Plain dotted strings (not pyasn1 objects) so that importing this module is free;
``pyasn1`` accepts them wherever an OBJECT IDENTIFIER is set.
"""

from __future__ import annotations

# --- PKIX arcs -------------------------------------------------------------------------
ID_PKIX = "1.3.6.1.5.5.7"
ID_IT = ID_PKIX + ".4"
ID_PKIP = ID_PKIX + ".5"
ID_REGCTRL = ID_PKIP + ".1"
ID_REGINFO = ID_PKIP + ".2"

# --- Registration controls and info (RFC 4211 §6-7, RFC 9810) ----------------------------
REGCTRL_REG_TOKEN = ID_REGCTRL + ".1"
REGCTRL_AUTHENTICATOR = ID_REGCTRL + ".2"
REGCTRL_PKI_PUBLICATION_INFO = ID_REGCTRL + ".3"
REGCTRL_PKI_ARCHIVE_OPTIONS = ID_REGCTRL + ".4"
REGCTRL_OLD_CERT_ID = ID_REGCTRL + ".5"
REGCTRL_PROTOCOL_ENCR_KEY = ID_REGCTRL + ".6"
REGCTRL_ALG_ID = ID_REGCTRL + ".11"
REGCTRL_RSA_KEY_LEN = ID_REGCTRL + ".12"
REGINFO_UTF8_PAIRS = ID_REGINFO + ".1"
REGINFO_CERT_REQ = ID_REGINFO + ".2"

# --- InfoTypes (RFC 9810 §5.3.19, RFC 9480) ----------------------------------------------
IT_CA_PROT_ENC_CERT = ID_IT + ".1"
IT_SIGN_KEY_PAIR_TYPES = ID_IT + ".2"
IT_ENC_KEY_PAIR_TYPES = ID_IT + ".3"
IT_PREFERRED_SYMM_ALG = ID_IT + ".4"
IT_CA_KEY_UPDATE_INFO = ID_IT + ".5"
IT_CURRENT_CRL = ID_IT + ".6"
IT_UNSUPPORTED_OIDS = ID_IT + ".7"
IT_KEY_PAIR_PARAM_REQ = ID_IT + ".10"
IT_KEY_PAIR_PARAM_REP = ID_IT + ".11"
IT_REV_PASSPHRASE = ID_IT + ".12"
IT_IMPLICIT_CONFIRM = ID_IT + ".13"
IT_CONFIRM_WAIT_TIME = ID_IT + ".14"
IT_ORIG_PKI_MESSAGE = ID_IT + ".15"
IT_SUPP_LANG_TAGS = ID_IT + ".16"
IT_CA_CERTS = ID_IT + ".17"
IT_ROOT_CA_KEY_UPDATE = ID_IT + ".18"
IT_CERT_REQ_TEMPLATE = ID_IT + ".19"
IT_ROOT_CA_CERT = ID_IT + ".20"
IT_CERT_PROFILE = ID_IT + ".21"
IT_CRL_STATUS_LIST = ID_IT + ".22"
IT_CRLS = ID_IT + ".23"
IT_KEM_CIPHERTEXT_INFO = ID_IT + ".24"

# --- MAC-based protection ---------------------------------------------------------------
PASSWORD_BASED_MAC = "1.2.840.113533.7.66.13"
KEM_BASED_MAC = "1.2.840.113533.7.66.16"
DH_BASED_MAC = "1.2.840.113533.7.66.30"
PBMAC1 = "1.2.840.113549.1.5.14"
PBKDF2 = "1.2.840.113549.1.5.12"
HMAC_SHA1_IETF = "1.3.6.1.5.5.8.1.2"  # hmac-sha1 (RFC 2104 arc), what openssl's PBM default uses
HMAC_WITH_SHA1 = "1.2.840.113549.2.7"
HMAC_WITH_SHA224 = "1.2.840.113549.2.8"
HMAC_WITH_SHA256 = "1.2.840.113549.2.9"
HMAC_WITH_SHA384 = "1.2.840.113549.2.10"
HMAC_WITH_SHA512 = "1.2.840.113549.2.11"

# --- Hashes -----------------------------------------------------------------------------
SHA1 = "1.3.14.3.2.26"
SHA224 = "2.16.840.1.101.3.4.2.4"
SHA256 = "2.16.840.1.101.3.4.2.1"
SHA384 = "2.16.840.1.101.3.4.2.2"
SHA512 = "2.16.840.1.101.3.4.2.3"
SHA3_256 = "2.16.840.1.101.3.4.2.8"
SHAKE128 = "2.16.840.1.101.3.4.2.11"
SHAKE256 = "2.16.840.1.101.3.4.2.12"

# --- Signature algorithms (RFC 9481 §3, RFC 8410, FIPS 204 / RFC 9881) -------------------
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
RSASSA_PSS = "1.2.840.113549.1.1.10"
MGF1 = "1.2.840.113549.1.1.8"
SHA1_WITH_RSA = "1.2.840.113549.1.1.5"
SHA224_WITH_RSA = "1.2.840.113549.1.1.14"
SHA256_WITH_RSA = "1.2.840.113549.1.1.11"
SHA384_WITH_RSA = "1.2.840.113549.1.1.12"
SHA512_WITH_RSA = "1.2.840.113549.1.1.13"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
ECDSA_WITH_SHA1 = "1.2.840.10045.4.1"
ECDSA_WITH_SHA224 = "1.2.840.10045.4.3.1"
ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
ECDSA_WITH_SHA384 = "1.2.840.10045.4.3.3"
ECDSA_WITH_SHA512 = "1.2.840.10045.4.3.4"
ED25519 = "1.3.101.112"
ED448 = "1.3.101.113"
X25519 = "1.3.101.110"
X448 = "1.3.101.111"
ML_DSA_44 = "2.16.840.1.101.3.4.3.17"
ML_DSA_65 = "2.16.840.1.101.3.4.3.18"
ML_DSA_87 = "2.16.840.1.101.3.4.3.19"
ML_KEM_512 = "2.16.840.1.101.3.4.4.1"
ML_KEM_768 = "2.16.840.1.101.3.4.4.2"
ML_KEM_1024 = "2.16.840.1.101.3.4.4.3"

# --- Curves -----------------------------------------------------------------------------
SECP256R1 = "1.2.840.10045.3.1.7"
SECP384R1 = "1.3.132.0.34"
SECP521R1 = "1.3.132.0.35"

# --- Symmetric and CMS ------------------------------------------------------------------
AES128_CBC = "2.16.840.1.101.3.4.1.2"
AES192_CBC = "2.16.840.1.101.3.4.1.22"
AES256_CBC = "2.16.840.1.101.3.4.1.42"
AES128_WRAP = "2.16.840.1.101.3.4.1.5"
AES192_WRAP = "2.16.840.1.101.3.4.1.25"
AES256_WRAP = "2.16.840.1.101.3.4.1.45"
ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
ID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
ID_CT_ENC_KEY_WITH_ID = "1.2.840.113549.1.9.16.1.21"
ID_CT_KP_A_KEY_PACKAGE = "2.16.840.1.101.2.1.2.78.5"
# RFC 9629 (KEMRecipientInfo) and RFC 8619 (HKDF AlgorithmIdentifiers)
ID_ORI = "1.2.840.113549.1.9.16.13"
ID_ORI_KEM = ID_ORI + ".3"
HKDF_WITH_SHA256 = "1.2.840.113549.1.9.16.3.28"
HKDF_WITH_SHA384 = "1.2.840.113549.1.9.16.3.29"
HKDF_WITH_SHA512 = "1.2.840.113549.1.9.16.3.30"

# --- X.509 extensions used in certificate templates -------------------------------------
CE_SUBJECT_KEY_IDENTIFIER = "2.5.29.14"
CE_KEY_USAGE = "2.5.29.15"
CE_SUBJECT_ALT_NAME = "2.5.29.17"
CE_BASIC_CONSTRAINTS = "2.5.29.19"
CE_CRL_REASON = "2.5.29.21"
CE_EXT_KEY_USAGE = "2.5.29.37"

NAMES: dict[str, str] = {
    value: name.lower().replace("_", "-")
    for name, value in list(globals().items())
    if name.isupper() and isinstance(value, str) and value[:1].isdigit()
}
# Prefer the names people read in RFCs and openssl output for the common ones.
NAMES.update(
    {
        PASSWORD_BASED_MAC: "passwordBasedMac",
        KEM_BASED_MAC: "kemBasedMac",
        DH_BASED_MAC: "dhBasedMac",
        PBMAC1: "pbmac1",
        HMAC_SHA1_IETF: "hmac-sha1",
        HMAC_WITH_SHA1: "hmacWithSHA1",
        HMAC_WITH_SHA224: "hmacWithSHA224",
        HMAC_WITH_SHA256: "hmacWithSHA256",
        HMAC_WITH_SHA384: "hmacWithSHA384",
        HMAC_WITH_SHA512: "hmacWithSHA512",
        SHA256_WITH_RSA: "sha256WithRSAEncryption",
        ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
        RSASSA_PSS: "RSASSA-PSS",
        ED25519: "Ed25519",
        ED448: "Ed448",
        ML_DSA_44: "ML-DSA-44",
        ML_DSA_65: "ML-DSA-65",
        ML_DSA_87: "ML-DSA-87",
        ML_KEM_512: "ML-KEM-512",
        ML_KEM_768: "ML-KEM-768",
        ML_KEM_1024: "ML-KEM-1024",
        ID_ORI_KEM: "id-ori-kem",
        HKDF_WITH_SHA256: "id-alg-hkdf-with-sha256",
        HKDF_WITH_SHA384: "id-alg-hkdf-with-sha384",
        HKDF_WITH_SHA512: "id-alg-hkdf-with-sha512",
        AES128_WRAP: "id-aes128-wrap",
        AES192_WRAP: "id-aes192-wrap",
        AES256_WRAP: "id-aes256-wrap",
        IT_IMPLICIT_CONFIRM: "implicitConfirm",
        IT_CA_CERTS: "caCerts",
        IT_ROOT_CA_KEY_UPDATE: "rootCaKeyUpdate",
        IT_CERT_REQ_TEMPLATE: "certReqTemplate",
        IT_CERT_PROFILE: "certProfile",
        IT_CRL_STATUS_LIST: "crlStatusList",
        IT_CRLS: "crls",
        IT_CONFIRM_WAIT_TIME: "confirmWaitTime",
        IT_ORIG_PKI_MESSAGE: "origPKIMessage",
        IT_KEM_CIPHERTEXT_INFO: "kemCiphertextInfo",
        REGCTRL_REG_TOKEN: "regToken",
        REGCTRL_AUTHENTICATOR: "authenticator",
        REGCTRL_OLD_CERT_ID: "oldCertID",
        REGCTRL_PROTOCOL_ENCR_KEY: "protocolEncrKey",
    }
)


def oid_name(oid: object) -> str:
    """The readable name of an OID (dotted form when unknown)."""
    dotted = str(oid)
    return NAMES.get(dotted, dotted)
