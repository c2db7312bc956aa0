#ifndef CAIRN_CCURL_SHIM_H
#define CAIRN_CCURL_SHIM_H
#include <curl/curl.h>

// curl_easy_setopt / curl_easy_getinfo are variadic macros-ish APIs that Swift
// cannot call directly: typed static inline wrappers, one per argument kind.
static inline CURLcode cairn_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode cairn_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode cairn_curl_setopt_str(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode cairn_curl_setopt_ptr(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode cairn_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }

typedef size_t (*cairn_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef int (*cairn_curl_xferinfo_cb)(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);
typedef int (*cairn_curl_sockopt_cb)(void *clientp, curl_socket_t curlfd, curlsocktype purpose);
static inline CURLcode cairn_curl_setopt_datacb(CURL *h, CURLoption o, cairn_curl_data_cb cb) { return curl_easy_setopt(h, o, cb); }
typedef int (*cairn_curl_seek_cb)(void *userp, curl_off_t offset, int origin);
static inline CURLcode cairn_curl_setopt_seekcb(CURL *h, CURLoption o, cairn_curl_seek_cb cb) { return curl_easy_setopt(h, o, cb); }
static inline CURLcode cairn_curl_setopt_xfercb(CURL *h, CURLoption o, cairn_curl_xferinfo_cb cb) { return curl_easy_setopt(h, o, cb); }

static inline CURLcode cairn_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode cairn_curl_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode cairn_curl_getinfo_double(CURL *h, CURLINFO i, double *v) { return curl_easy_getinfo(h, i, v); }

static inline CURLSHcode cairn_curl_share_setopt_long(CURLSH *s, CURLSHoption o, long v) { return curl_share_setopt(s, o, v); }

static inline int cairn_curl_seekfunc_ok(void) { return CURL_SEEKFUNC_OK; }
static inline int cairn_curl_seekfunc_cantseek(void) { return CURL_SEEKFUNC_CANTSEEK; }
static inline int cairn_curl_seekfunc_fail(void) { return CURL_SEEKFUNC_FAIL; }
static inline size_t cairn_curl_readfunc_abort(void) { return CURL_READFUNC_ABORT; }
static inline size_t cairn_curl_readfunc_pause(void) { return CURL_READFUNC_PAUSE; }
static inline size_t cairn_curl_writefunc_pause(void) { return CURL_WRITEFUNC_PAUSE; }
#endif
