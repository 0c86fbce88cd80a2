/* SPDX-License-Identifier: MIT */
/*
 * The counters the C servers keep in their "hellobench-counters" memfd, one
 * X-macro list per server: the server lays its struct out from it and prints
 * the names in that order for --counters, which is where the Python side
 * (bench/impl/memfd_counters.py) takes them from.
 */
#ifndef HB_COUNTERS_H
#define HB_COUNTERS_H

#include <stdint.h>

#define HB_COUNTERS_EPOLL(X)	\
	X(answered)		\
	X(rejected)		\
	X(send_dropped)		\
	X(send_failed)		\
	X(wakeups)

#define HB_COUNTERS_RECVMMSG(X)	\
	X(answered)		\
	X(rejected)		\
	X(send_failed)		\
	X(batches)

#define HB_COUNTER_FIELD(name)	uint64_t name;
#define HB_COUNTER_NAME(name)	#name,

/*
 * struct hb_counters laid out from @list, and hb_counter_names[] naming its
 * fields in the same order.
 */
#define HB_DEFINE_COUNTERS(list)					\
	struct hb_counters {						\
		list(HB_COUNTER_FIELD)					\
	};								\
	static const char *const hb_counter_names[] = {			\
		list(HB_COUNTER_NAME)					\
	}

#define HB_NCOUNTERS	(sizeof(hb_counter_names) / sizeof(hb_counter_names[0]))

#endif /* HB_COUNTERS_H */
