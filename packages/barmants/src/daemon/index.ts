/*
 * The daemon: supervised WAL receivers, the backup scheduler, the maintenance loop, signals.
 * Time comes through a Clock so that tests pin it instead of sleeping.
 */
export { Daemon, type DaemonOptions, type ReceiverTask } from './daemon.js';
export { systemClock, type Clock } from './clock.js';
export { parseSchedule, nextRun, runsBetween, type CronSchedule } from './cron.js';
export {
  ServerSchedule, planCatchup, fileScheduleStore, daemonStateDir, type ScheduleState, type ScheduleStore, type CatchupPlan, type DueKind,
} from './schedule.js';
export {
  DaemonMetrics, MetricsServer, RECEIVER_STATES, receiverMetricState, walHoles, splitListen, isLoopback, type MetricsContext, type ReceiverMetricState,
} from './metrics.js';
export { Supervisor, type SupervisorEvent, type SupervisorOptions, type SupervisedState } from './supervisor.js';
