/* SPDX-License-Identifier: MIT */
/* What the async macros call out of line: see afe/future.h. */
#include <afe/future.h>
#include <afe/task.h>

#include <stdio.h>
#include <stdlib.h>

void afe__resume_lost(const struct afe_future *f, const char *fn, const char *file, int line)
{
	fprintf(stderr,
		"afe: future %p (%s, %s:%d) resumed at line %d, where no await or yield is: "
		"an AFE_AWAIT or AFE_YIELD inside a switch statement of its own?\n",
		(const void *)f, fn, file, line, f->resume);
	abort();
}

void afe__await_finished(const struct afe_future *parent, const struct afe_future *child,
			 const char *fn, const char *file, int line)
{
	fprintf(stderr,
		"afe: future %p (%s, %s:%d) awaits future %p, which has already finished: "
		"initialise it again before each AFE_AWAIT, or it returns its old result at once\n",
		(const void *)parent, fn, file, line, (const void *)child);
	abort();
}

void afe__awaited_by_two_tasks(const struct afe_future *f, const struct afe_context *cx,
			       const char *fn, const char *file, int line)
{
	const char *name = afe_task_current_name(cx);
	fprintf(stderr,
		"afe: future %p, awaited by %s (%s:%d) in task \"%s\", was awaited by another "
		"task since its init: one future awaited by two tasks at once?\n",
		(const void *)f, fn, file, line, name ? name : "(unnamed)");
	abort();
}
