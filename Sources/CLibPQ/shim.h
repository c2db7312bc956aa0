#ifndef CAIRN_CLIBPQ_SHIM_H
#define CAIRN_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
