#ifndef CAIRN_COPENSSL_SHIM_H
#define CAIRN_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/kdf.h>

// EVP_CIPHER_CTX_ctrl with GCM constants are macros; wrap them.
static inline int cairn_gcm_set_ivlen(EVP_CIPHER_CTX *c, int len) { return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, len, NULL); }
static inline int cairn_gcm_get_tag(EVP_CIPHER_CTX *c, int len, void *tag) { return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, len, tag); }
static inline int cairn_gcm_set_tag(EVP_CIPHER_CTX *c, int len, void *tag) { return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, len, tag); }
// HKDF-SHA256 (RFC 5869, extract-and-expand) through EVP_PKEY_derive. The
// EVP_PKEY_CTX_set*_hkdf_* helpers are macros in some OpenSSL versions, so
// the whole derivation lives here. Returns 1 on success, 0 on any failure.
static inline int cairn_hkdf_sha256(unsigned char *out, size_t outlen,
                                    const unsigned char *ikm, size_t ikmlen,
                                    const unsigned char *salt, size_t saltlen,
                                    const unsigned char *info, size_t infolen) {
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (pctx == NULL) return 0;
    int ok = EVP_PKEY_derive_init(pctx) == 1
        && EVP_PKEY_CTX_set_hkdf_md(pctx, EVP_sha256()) == 1
        && (saltlen == 0 || EVP_PKEY_CTX_set1_hkdf_salt(pctx, salt, (int)saltlen) == 1)
        && EVP_PKEY_CTX_set1_hkdf_key(pctx, ikm, (int)ikmlen) == 1
        && (infolen == 0 || EVP_PKEY_CTX_add1_hkdf_info(pctx, info, (int)infolen) == 1);
    size_t len = outlen;
    if (ok) ok = EVP_PKEY_derive(pctx, out, &len) == 1 && len == outlen;
    EVP_PKEY_CTX_free(pctx);
    return ok;
}
#endif
