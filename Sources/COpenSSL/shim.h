#ifndef CAIRN_COPENSSL_SHIM_H
#define CAIRN_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

// EVP_CIPHER_CTX_ctrl with GCM constants are macros; wrap them.
static inline int cairn_gcm_set_ivlen(EVP_CIPHER_CTX *c, int len) { return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, len, NULL); }
static inline int cairn_gcm_get_tag(EVP_CIPHER_CTX *c, int len, void *tag) { return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, len, tag); }
static inline int cairn_gcm_set_tag(EVP_CIPHER_CTX *c, int len, void *tag) { return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, len, tag); }
#endif
