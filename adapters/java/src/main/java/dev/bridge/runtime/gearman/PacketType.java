package dev.bridge.runtime.gearman;

/**
 * Every binary packet type of gearmand 1.1.20, numbered as on the wire, with how many
 * NUL-separated arguments each carries and whether the last one is opaque data (the rest of the
 * body, NUL bytes allowed). The same table as bridge's Python protocol layer
 * ({@code bridge/protocol}), taken from gearmand's own command table.
 */
public enum PacketType {
    CAN_DO(1, 1, false),
    CANT_DO(2, 1, false),
    RESET_ABILITIES(3, 0, false),
    PRE_SLEEP(4, 0, false),
    NOOP(6, 0, false),
    SUBMIT_JOB(7, 3, true),
    JOB_CREATED(8, 1, false),
    GRAB_JOB(9, 0, false),
    NO_JOB(10, 0, false),
    JOB_ASSIGN(11, 3, true),
    WORK_STATUS(12, 3, false),
    WORK_COMPLETE(13, 2, true),
    WORK_FAIL(14, 1, false),
    GET_STATUS(15, 1, false),
    ECHO_REQ(16, 1, true),
    ECHO_RES(17, 1, true),
    SUBMIT_JOB_BG(18, 3, true),
    ERROR(19, 2, false),
    STATUS_RES(20, 5, false),
    SUBMIT_JOB_HIGH(21, 3, true),
    SET_CLIENT_ID(22, 1, false),
    CAN_DO_TIMEOUT(23, 2, false),
    ALL_YOURS(24, 0, false),
    WORK_EXCEPTION(25, 2, true),
    OPTION_REQ(26, 1, false),
    OPTION_RES(27, 1, false),
    WORK_DATA(28, 2, true),
    WORK_WARNING(29, 2, true),
    GRAB_JOB_UNIQ(30, 0, false),
    JOB_ASSIGN_UNIQ(31, 4, true),
    SUBMIT_JOB_HIGH_BG(32, 3, true),
    SUBMIT_JOB_LOW(33, 3, true),
    SUBMIT_JOB_LOW_BG(34, 3, true),
    SUBMIT_JOB_SCHED(35, 8, true),
    SUBMIT_JOB_EPOCH(36, 4, true),
    SUBMIT_REDUCE_JOB(37, 5, true),
    SUBMIT_REDUCE_JOB_BACKGROUND(38, 5, true),
    GRAB_JOB_ALL(39, 0, false),
    JOB_ASSIGN_ALL(40, 5, true),
    GET_STATUS_UNIQUE(41, 1, false),
    STATUS_RES_UNIQUE(42, 6, false);

    private static final PacketType[] BY_NUMBER = new PacketType[43];

    static {
        for (PacketType type : values()) {
            BY_NUMBER[type.number] = type;
        }
    }

    private final int number;
    private final int argumentCount;
    private final boolean lastArgumentIsData;

    PacketType(int number, int argumentCount, boolean lastArgumentIsData) {
        this.number = number;
        this.argumentCount = argumentCount;
        this.lastArgumentIsData = lastArgumentIsData;
    }

    /** The type number on the wire. */
    public int number() {
        return number;
    }

    /** How many NUL-separated arguments the body holds. */
    public int argumentCount() {
        return argumentCount;
    }

    /** Whether the last argument is opaque data that may contain NUL bytes. */
    public boolean lastArgumentIsData() {
        return lastArgumentIsData;
    }

    /** The type with this wire number, or null when gearmand 1.1.20 has none (0, 5, 43...). */
    public static PacketType fromNumber(long number) {
        if (number < 0 || number >= BY_NUMBER.length) {
            return null;
        }
        return BY_NUMBER[(int) number];
    }
}
