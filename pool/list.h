/* SPDX-License-Identifier: MIT */
/*
 * The library's one intrusive list: doubly linked, NULL-terminated. A list
 * is a struct with `head` and `tail`, an element a struct with `prev` and
 * `next` pointing at its own type; both start zeroed (empty, unlinked).
 * AFE_LIST_FUNCTIONS(prefix, list_type, elem_type) defines, for one pair
 * of types,
 *
 *   prefix_push_back(l, e)    e becomes the last
 *   prefix_push_front(l, e)   e becomes the first
 *   prefix_remove(l, e)       e, on l, leaves it; its links are cleared
 *
 * as functions on the element's own type, so the loops that walk a list
 * (for (e = l->head; e; e = e->next)) need no container_of. The caller
 * serialises the calls (the list's lock). Waiters (src/sync/waitq.h),
 * token waits, signal streams and watches are such lists.
 */
#ifndef AFE_POOL_LIST_H
#define AFE_POOL_LIST_H

#include "afe/common.h" /* AFE__UNUSED: a list may use only some of them */

#define AFE_LIST_FUNCTIONS(prefix, list_type, elem_type)                          \
	static inline AFE__UNUSED void prefix##_push_back(list_type *l, elem_type *e)        \
	{                                                                        \
		e->next = NULL;                                                  \
		e->prev = l->tail;                                               \
		if (l->tail)                                                     \
			l->tail->next = e;                                       \
		else                                                             \
			l->head = e;                                             \
		l->tail = e;                                                     \
	}                                                                        \
	static inline AFE__UNUSED void prefix##_push_front(list_type *l, elem_type *e)       \
	{                                                                        \
		e->prev = NULL;                                                  \
		e->next = l->head;                                               \
		if (l->head)                                                     \
			l->head->prev = e;                                       \
		else                                                             \
			l->tail = e;                                             \
		l->head = e;                                                     \
	}                                                                        \
	static inline AFE__UNUSED void prefix##_remove(list_type *l, elem_type *e)           \
	{                                                                        \
		if (e->prev)                                                     \
			e->prev->next = e->next;                                 \
		else                                                             \
			l->head = e->next;                                       \
		if (e->next)                                                     \
			e->next->prev = e->prev;                                 \
		else                                                             \
			l->tail = e->prev;                                       \
		e->next = e->prev = NULL;                                        \
	}

#endif /* AFE_POOL_LIST_H */
