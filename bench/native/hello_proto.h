/* SPDX-License-Identifier: MIT */
/*
 * The HELLO protocol for C code: user space, BPF and kernel modules alike.
 * Plain macros only, so that any of them can include it.  bench/protocol.py is the
 * Python twin; tests check that both agree.
 */
#ifndef HELLO_PROTO_H
#define HELLO_PROTO_H

#define HELLO_MAGIC		"HELLO"
#define HELLO_MAGIC_LEN		5
#define HELLO_REPLY		"GOT IT"
#define HELLO_REPLY_LEN		6
#define HELLO_MIN_REQUEST	6
#define HELLO_MAX_REQUEST	1472
#define HELLO_DEFAULT_PORT	3000
#define HELLO_HEADER_SIZE	24	/* "HELLO " | flags u16 | seq u64 | stamp u64 */
#define HELLO_FLAG_WARMUP	0x0001

#endif /* HELLO_PROTO_H */
