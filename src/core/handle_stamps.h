/* SPDX-License-Identifier: MIT */
/*
 * Debug builds: which copy of a join handle is the live one.
 *
 * A handle is a counted reference to its task, and the join, cancel and
 * drop that consume it empty only the copy they were given. A copy made
 * before that still holds the task's address, by then perhaps freed and
 * reused. So each handle carries a stamp, and a table outside the tasks
 * (one lock, a chained hash) keeps the stamp of the live handle of each
 * task that has one: the spawn issues it, a join or cancel taking the
 * handle over issues a new one (so the copies left behind go stale), and
 * the last release retires it. A handle whose stamp is not the table's is
 * refused before its task is touched. Release builds keep no table and
 * check nothing: the stamp stays 0.
 */
#ifndef AFE_HANDLE_STAMPS_H
#define AFE_HANDLE_STAMPS_H

#include <afe/task.h>
#include <stdbool.h>
#include <stdint.h>

/* Records a new live stamp for t's handle and returns it (0: not tracked,
 * out of memory). */
uint32_t afe__handle_stamp_issue(const struct afe_task *t);

/* True when h (filled) is the live handle of its task, or not tracked;
 * else says on stderr that fn was given a stale copy, and returns false. */
bool afe__handle_stamp_is_live(const struct afe_join_handle *h, const char *fn);

/* Forgets h's task, if h is its live handle: called as h is released. */
void afe__handle_stamp_retire(const struct afe_join_handle *h);

#ifdef NDEBUG
#define afe__handle_stamp_issue(t) ((void)(t), 0u)
#define afe__handle_stamp_is_live(h, fn) ((void)(h), (void)(fn), true)
#define afe__handle_stamp_retire(h) ((void)(h))
#endif

#endif /* AFE_HANDLE_STAMPS_H */
