package dev.bridge.runtime.gearman;

/**
 * The code behind one Gearman function. It ends the job through {@link GearmanJob#complete},
 * {@link GearmanJob#exception} or {@link GearmanJob#fail}; a function that returns without ending
 * it completes it with an empty reply, and one that throws fails it (WORK_FAIL).
 */
@FunctionalInterface
public interface JobFunction {
    void run(GearmanJob job) throws Exception;
}
