/* SPDX-License-Identifier: MIT */
/* Blocking jobs: results, the thread bound under load, refusing past the
 * queue bound, cancelling queued and running jobs, bad input, and
 * abandonable jobs a timeout leaves running. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "helpers.h"

struct await_job {
	struct afe_future base;
	struct afe_blocking job;
};

static int await_job_poll(struct afe_future *f, struct afe_context *cx)
{
	struct await_job *self = afe_container_of(f, struct await_job, base);
	AFE_ASYNC_BEGIN(f, cx);
	AFE_AWAIT(&self->job.base);
	AFE_RETURN(self->job.base.result);
	AFE_ASYNC_END;
}

static struct await_job await_job_of(afe_blocking_fn *fn, void *arg, bool try_only)
{
	struct await_job a;
	afe_future_init(&a.base, await_job_poll);
	if (try_only)
		afe_try_blocking_init(&a.job, fn, arg);
	else
		afe_blocking_init(&a.job, fn, arg);
	return a;
}

static struct afe_runtime *runtime_with_blocking(unsigned threads, unsigned queue)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 2;
	config.blocking_threads = threads;
	config.blocking_queue = queue;
	struct afe_runtime *rt = NULL;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	return rt;
}

static intptr_t triple_off_worker(void *arg)
{
	/* Not a worker: no runtime here. */
	return afe_runtime_current() ? -1 : 3 * (intptr_t)arg;
}

Test(blocking, job_runs_off_the_workers_and_returns_its_result)
{
	struct afe_runtime *rt = test_runtime(2);
	struct await_job a = await_job_of(triple_off_worker, (void *)14, false);
	cr_assert_eq(test_block_on(rt, &a), 42);
	test_runtime_destroy(rt);
}

static atomic_int running, most_running, finished;

static intptr_t busy_job(void *arg)
{
	int now = atomic_fetch_add(&running, 1) + 1;
	for (int seen = atomic_load(&most_running); now > seen;)
		if (atomic_compare_exchange_weak(&most_running, &seen, now))
			break;
	usleep(200);
	atomic_fetch_sub(&running, 1);
	atomic_fetch_add(&finished, 1);
	return (intptr_t)arg;
}

Test(blocking, many_jobs_under_load_stay_within_the_thread_bound, .timeout = 300)
{
	struct afe_runtime *rt = runtime_with_blocking(8, 1024);
	enum { JOBS = 2000 };
	static struct afe_join_handle handles[JOBS];
	for (intptr_t i = 0; i < JOBS; i++) {
		struct await_job a = await_job_of(busy_job, (void *)i, false);
		cr_assert_eq(afe_spawn(rt, &a, &handles[i]), 0);
	}
	for (intptr_t i = 0; i < JOBS; i++) {
		struct afe_join j;
		afe_join_init(&j, &handles[i]);
		cr_assert_eq(test_block_on(rt, &j), i);
	}
	cr_assert_eq(atomic_load(&finished), JOBS);
	cr_assert_leq(atomic_load(&most_running), 8);
	cr_assert_geq(atomic_load(&most_running), 2, "jobs ran side by side");
	test_runtime_destroy(rt);
}

/* A job that blocks until the test opens its gate. */
static atomic_bool gate_open;
static atomic_int gate_entered;

static intptr_t gated_job(void *arg)
{
	atomic_fetch_add(&gate_entered, 1);
	while (!atomic_load(&gate_open))
		usleep(100);
	return (intptr_t)arg;
}

static void wait_entered(int n)
{
	while (atomic_load(&gate_entered) < n)
		usleep(100);
}

/* Polls three try-jobs in turn from one task while the only thread is
 * busy: two are queued, the third is refused. */
struct three_tries {
	struct afe_future base;
	struct afe_blocking jobs[3];
	intptr_t refused;
	struct afe_future *queued[2];
	struct afe_join_all both;
};

static int three_tries_poll(struct afe_future *f, struct afe_context *cx)
{
	struct three_tries *self = afe_container_of(f, struct three_tries, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (int i = 0; i < 3; i++)
		afe_try_blocking_init(&self->jobs[i], gated_job, (void *)(intptr_t)(10 + i));
	for (int i = 0; i < 3; i++)
		afe_future_poll(&self->jobs[i].base, cx);
	self->refused = afe_future_is_done(&self->jobs[2].base) ? self->jobs[2].base.result : 0;
	atomic_store(&gate_open, true);
	self->queued[0] = &self->jobs[0].base;
	self->queued[1] = &self->jobs[1].base;
	afe_join_all_init(&self->both, self->queued, 2);
	AFE_AWAIT(&self->both.base);
	if (self->jobs[0].base.result != 10 || self->jobs[1].base.result != 11)
		AFE_RETURN(-1);
	AFE_RETURN(self->refused);
	AFE_ASYNC_END;
}

Test(blocking, try_jobs_are_refused_past_the_queue_bound)
{
	struct afe_runtime *rt = runtime_with_blocking(1, 2);
	struct afe_join_handle running_job;
	struct await_job a = await_job_of(gated_job, (void *)1, true);
	cr_assert_eq(afe_spawn(rt, &a, &running_job), 0);
	wait_entered(1); /* the only thread is busy */
	struct three_tries t;
	afe_future_init(&t.base, three_tries_poll);
	cr_assert_eq(test_block_on(rt, &t), -EAGAIN);
	struct afe_join j;
	afe_join_init(&j, &running_job);
	cr_assert_eq(test_block_on(rt, &j), 1);
	test_runtime_destroy(rt);
}

static atomic_int never_ran;
static intptr_t must_not_run(void *arg)
{
	(void)arg;
	atomic_fetch_add(&never_ran, 1);
	return 0;
}

Test(blocking, cancelling_removes_a_queued_job_and_waits_for_a_running_one)
{
	struct afe_runtime *rt = runtime_with_blocking(1, 16);
	struct afe_join_handle running_job, queued_job;
	struct await_job a = await_job_of(gated_job, (void *)7, false);
	cr_assert_eq(afe_spawn(rt, &a, &running_job), 0);
	wait_entered(1);
	a = await_job_of(must_not_run, NULL, false);
	cr_assert_eq(afe_spawn(rt, &a, &queued_job), 0);
	usleep(20000);
	struct afe_cancel c;
	cr_assert_eq(afe_cancel_init(&c, &queued_job), 0);
	cr_assert_eq(test_block_on(rt, &c), -ECANCELED);
	/* Cancelling the running one returns only once it returned. */
	cr_assert_eq(afe_cancel_init(&c, &running_job), 0);
	struct afe_join_handle canceller;
	cr_assert_eq(afe_spawn(rt, &c, &canceller), 0);
	usleep(20000);
	cr_assert_not(afe_join_handle_is_finished(&canceller), "it waits for the job");
	atomic_store(&gate_open, true);
	struct afe_join j;
	afe_join_init(&j, &canceller);
	cr_assert_eq(test_block_on(rt, &j), -ECANCELED);
	cr_assert_eq(atomic_load(&never_ran), 0);
	test_runtime_destroy(rt);
}

Test(blocking, null_function_and_polling_outside_a_runtime_are_einval)
{
	struct afe_runtime *rt = test_runtime(2);
	struct await_job a = await_job_of(NULL, NULL, false);
	cr_assert_eq(test_block_on(rt, &a), -EINVAL);
	test_runtime_destroy(rt);
	struct afe_blocking job;
	afe_blocking_init(&job, triple_off_worker, NULL);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	cr_assert_eq(afe_future_poll(&job.base, &cx), AFE_READY);
	cr_assert_eq(job.base.result, -EINVAL);
	/* The other two kinds of job: a null function, and outside a runtime
	 * (no heap copy is made, so none leaks). */
	afe_try_blocking_init(&job, NULL, NULL);
	cr_assert_eq(afe_future_poll(&job.base, &cx), AFE_READY);
	cr_assert_eq(job.base.result, -EINVAL);
	afe_blocking_init_abandonable(&job, NULL, NULL);
	cr_assert_eq(afe_future_poll(&job.base, &cx), AFE_READY);
	cr_assert_eq(job.base.result, -EINVAL);
	afe_try_blocking_init(&job, triple_off_worker, NULL);
	cr_assert_eq(afe_future_poll(&job.base, &cx), AFE_READY);
	cr_assert_eq(job.base.result, -EINVAL);
	afe_blocking_init_abandonable(&job, triple_off_worker, NULL);
	cr_assert_eq(afe_future_poll(&job.base, &cx), AFE_READY);
	cr_assert_eq(job.base.result, -EINVAL);
	cr_assert_null(job.copy);
	cr_assert_eq(atomic_load(&cw.refs), 0);
}

static intptr_t destroy_from_here(void *arg)
{
	return afe_runtime_destroy(arg);
}

Test(blocking, a_job_cannot_destroy_its_own_runtime)
{
	struct afe_runtime *rt = test_runtime(2);
	struct await_job a = await_job_of(destroy_from_here, rt, false);
	cr_assert_eq(test_block_on(rt, &a), -EINVAL, "it would wait for itself");
	test_runtime_destroy(rt);
}

/* ---- abandonable jobs ------------------------------------------------ */

/* A job that blocks until its gate opens (at most 10 s), then counts its
 * return. Its state is static: it outlives the future, as documented. */
static atomic_bool slow_gate;
static atomic_int slow_entered, slow_returned;

static intptr_t slow_job(void *arg)
{
	atomic_fetch_add(&slow_entered, 1);
	for (int i = 0; i < 100000 && !atomic_load(&slow_gate); i++)
		usleep(100);
	atomic_fetch_add(&slow_returned, 1);
	return (intptr_t)arg;
}

static void slow_reset(void)
{
	atomic_store(&slow_gate, false);
	atomic_store(&slow_entered, 0);
	atomic_store(&slow_returned, 0);
}

/* afe_timeout over a blocking job (abandonable or not) started on a
 * blocking thread; records when the timeout completed. */
struct timed_job {
	struct afe_future base;
	struct afe_blocking job;
	struct afe_timeout limit;
	uint64_t ns, *elapsed;
	int *returned_at_timeout;
};

static int timed_job_poll(struct afe_future *f, struct afe_context *cx)
{
	struct timed_job *self = afe_container_of(f, struct timed_job, base);
	AFE_ASYNC_BEGIN(f, cx);
	*self->elapsed = afe_now_ns();
	afe_timeout_init(&self->limit, &self->job.base, self->ns);
	AFE_AWAIT(&self->limit.base);
	*self->elapsed = afe_now_ns() - *self->elapsed;
	*self->returned_at_timeout = atomic_load(&slow_returned);
	AFE_RETURN(self->limit.base.result);
	AFE_ASYNC_END;
}

static struct timed_job timed_job_make(bool abandonable, uint64_t ns, uint64_t *elapsed,
				       int *returned)
{
	struct timed_job t = {.ns = ns, .elapsed = elapsed, .returned_at_timeout = returned};
	afe_future_init(&t.base, timed_job_poll);
	if (abandonable)
		afe_blocking_init_abandonable(&t.job, slow_job, (void *)5);
	else
		afe_blocking_init(&t.job, slow_job, (void *)5);
	return t;
}

/* Opens slow_gate after 300 ms, from a thread of its own. */
static void *open_gate_later(void *arg)
{
	(void)arg;
	usleep(300000);
	atomic_store(&slow_gate, true);
	return NULL;
}

Test(blocking, timeout_abandons_a_running_abandonable_job_at_the_deadline, .timeout = 30)
{
	struct afe_runtime *rt = runtime_with_blocking(2, 16);
	slow_reset();
	pthread_t opener;
	cr_assert_eq(pthread_create(&opener, NULL, open_gate_later, NULL), 0);
	uint64_t elapsed = 0;
	int returned = -1;
	struct timed_job t = timed_job_make(true, 50 * 1000000ull, &elapsed, &returned);
	cr_assert_eq(test_block_on(rt, &t), -ETIMEDOUT);
	fprintf(stderr, "abandonable: timeout after %llu ms, job returned: %d\n",
		(unsigned long long)(elapsed / 1000000), returned);
	cr_assert_eq(returned, 0, "the timeout did not wait for the job");
	cr_assert_lt(elapsed, 250 * 1000000ull, "at the deadline, not at the gate");
	/* Destroy waits for the abandoned call, which frees its copy. */
	test_runtime_destroy(rt);
	cr_assert_eq(atomic_load(&slow_returned), 1);
	pthread_join(opener, NULL);
}

/* The default job still waits for the running call: the timeout returns
 * only after the function did. */
Test(blocking, timeout_over_a_plain_job_waits_for_it, .timeout = 30)
{
	struct afe_runtime *rt = runtime_with_blocking(2, 16);
	slow_reset();
	pthread_t opener;
	cr_assert_eq(pthread_create(&opener, NULL, open_gate_later, NULL), 0);
	uint64_t elapsed = 0;
	int returned = -1;
	struct timed_job t = timed_job_make(false, 50 * 1000000ull, &elapsed, &returned);
	cr_assert_eq(test_block_on(rt, &t), -ETIMEDOUT);
	cr_assert_eq(returned, 1);
	cr_assert_geq(elapsed, 250 * 1000000ull);
	pthread_join(opener, NULL);
	test_runtime_destroy(rt);
}

Test(blocking, abandonable_job_that_finishes_gives_its_result, .timeout = 30)
{
	struct afe_runtime *rt = runtime_with_blocking(2, 16);
	slow_reset();
	atomic_store(&slow_gate, true);
	uint64_t elapsed = 0;
	int returned = -1;
	struct timed_job t = timed_job_make(true, 10000 * 1000000ull, &elapsed, &returned);
	cr_assert_eq(test_block_on(rt, &t), 5);
	cr_assert_eq(returned, 1);
	test_runtime_destroy(rt);
}

/* Cancelled while queued behind a busy thread, an abandonable job is
 * removed and never runs. */
Test(blocking, abandonable_job_cancelled_while_queued_never_runs, .timeout = 30)
{
	struct afe_runtime *rt = runtime_with_blocking(1, 16);
	slow_reset();
	atomic_store(&gate_open, false);
	atomic_store(&gate_entered, 0);
	atomic_store(&never_ran, 0);
	struct afe_join_handle busy, queued;
	struct await_job a = await_job_of(gated_job, (void *)1, false);
	cr_assert_eq(afe_spawn(rt, &a, &busy), 0);
	wait_entered(1);
	afe_blocking_init_abandonable(&a.job, must_not_run, NULL);
	cr_assert_eq(afe_spawn(rt, &a, &queued), 0);
	usleep(20000);
	struct afe_cancel c;
	cr_assert_eq(afe_cancel_init(&c, &queued), 0);
	cr_assert_eq(test_block_on(rt, &c), -ECANCELED);
	atomic_store(&gate_open, true);
	struct afe_join j;
	afe_join_init(&j, &busy);
	cr_assert_eq(test_block_on(rt, &j), 1);
	cr_assert_eq(atomic_load(&never_ran), 0);
	test_runtime_destroy(rt);
}
