"""Alarms on what takes the login service down, sent to one encrypted SNS topic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import (
    CloudwatchMetricAlarm,
    CloudwatchMetricAlarmMetricQuery,
    CloudwatchMetricAlarmMetricQueryMetric,
)
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

# suffix, description, namespace, metric, dimensions, statistic, operator, threshold, minutes
Threshold = tuple[str, str, str, str, dict[str, str], str, str, float, int]


@dataclass(frozen=True)
class ServiceAlarmsProps:
    """The login service itself: load balancer, nodes, artifact file system, directory accounts."""

    load_balancer_arn_suffix: str
    target_group_arn_suffix: str
    autoscaling_group_name: str
    min_healthy_hosts: int
    efs_file_system_id: str
    node_metrics_namespace: str


@dataclass(frozen=True)
class DatabaseAlarmsProps:
    db_instance_identifier: str
    db_allocated_storage_gib: int


@dataclass(frozen=True)
class AlarmsProps:
    name_prefix: str
    kms_key_arn: str
    # None: the stack has no nodes (a branch base).
    service: ServiceAlarmsProps | None
    # None: the database is another stack's (a branch base's), and so are its alarms.
    database: DatabaseAlarmsProps | None
    # The function that renews the directory passwords every day (wso2_on_aws.directory_accounts).
    directory_accounts_function_name: str | None
    email: str | None = None
    # Share of requests answered 5xx (ALB or target) that pages someone.
    error_rate_percent: float = 5.0
    p99_response_seconds: float = 3.0
    cpu_percent: int = 80


class Alarms(Construct):
    """Outputs: `topic_arn`, `names` (every alarm name)."""

    def __init__(self, scope: Construct, id_: str, props: AlarmsProps):
        super().__init__(scope, id_)
        self.prefix = props.name_prefix
        topic = SnsTopic(self, "topic", name=f"{props.name_prefix}-alarms", kms_master_key_id=props.kms_key_arn)
        self.topic_arn = topic.arn
        if props.email:
            SnsTopicSubscription(self, "email", topic_arn=topic.arn, protocol="email", endpoint=props.email)
        self.names: list[str] = []
        thresholds = [*self._service_thresholds(props), *self._database_thresholds(props)]
        for suffix, description, namespace, metric, dimensions, statistic, operator, threshold, minutes in thresholds:
            # No data from the target group means no healthy node at all, not "all fine".
            missing = "breaching" if metric in ("HealthyHostCount", "DeepHealth") else "notBreaching"
            percentile = statistic.startswith("p")
            self._add(suffix, description, evaluation_periods=minutes, datapoints_to_alarm=minutes,
                      comparison_operator=operator, threshold=threshold, treat_missing_data=missing, period=60,
                      namespace=namespace, metric_name=metric, dimensions=dimensions,
                      statistic=None if percentile else statistic, extended_statistic=statistic if percentile else None)
        if props.service is not None:
            self._error_rate({"LoadBalancer": props.service.load_balancer_arn_suffix}, props)
        if props.directory_accounts_function_name is not None:
            self._directory_accounts(props.directory_accounts_function_name)

    @staticmethod
    def _service_thresholds(props: AlarmsProps) -> list[Threshold]:
        service = props.service
        if service is None:
            return []
        alb = {"LoadBalancer": service.load_balancer_arn_suffix}
        group = {"AutoScalingGroupName": service.autoscaling_group_name}
        return [
            ("healthy-hosts", "Fewer healthy WSO2 nodes behind the ALB than the group's minimum",
             "AWS/ApplicationELB", "HealthyHostCount", {**alb, "TargetGroup": service.target_group_arn_suffix},
             "Minimum", "LessThanThreshold", service.min_healthy_hosts, 3),
            ("response-time-p99", f"p99 response time above {props.p99_response_seconds}s",
             "AWS/ApplicationELB", "TargetResponseTime", alb, "p99", "GreaterThanThreshold",
             props.p99_response_seconds, 5),
            ("node-cpu", f"Node CPU above {props.cpu_percent}% for 15 minutes", "AWS/EC2", "CPUUtilization", group,
             "Average", "GreaterThanThreshold", props.cpu_percent, 15),
            ("node-memory", "Node memory above 90% (JVM heap plus OS; WSO2 needs 2 GB for the OS)",
             service.node_metrics_namespace, "mem_used_percent", group, "Maximum", "GreaterThanThreshold", 90, 5),
            # Each node publishes WSO2's deep health check (every datasource and the user store) once a
            # minute; the load balancer only checks liveness, so this is where a dependency outage shows.
            ("deep-health", "A WSO2 node's deep health check (databases, user store) has failed for 3 minutes",
             service.node_metrics_namespace, "DeepHealth", group, "Minimum", "LessThanThreshold", 1, 3),
            ("efs-io-limit", "Artifact file system near its I/O limit (WSO2 deployers would stall)", "AWS/EFS",
             "PercentIOLimit", {"FileSystemId": service.efs_file_system_id}, "Maximum", "GreaterThanThreshold",
             90, 5),
        ]

    @staticmethod
    def _database_thresholds(props: AlarmsProps) -> list[Threshold]:
        if props.database is None:
            return []
        db = {"DBInstanceIdentifier": props.database.db_instance_identifier}
        return [
            ("db-cpu", f"Database CPU above {props.cpu_percent}% for 15 minutes", "AWS/RDS", "CPUUtilization", db,
             "Average", "GreaterThanThreshold", props.cpu_percent, 15),
            ("db-free-storage", "Database free storage below 10% of the allocated size", "AWS/RDS",
             "FreeStorageSpace", db, "Minimum", "LessThanThreshold",
             props.database.db_allocated_storage_gib * 1024 ** 3 // 10, 5),
        ]

    def _directory_accounts(self, function_name: str) -> None:
        """AD expires a password after 42 days: a failed daily renewal leaves weeks to act, if someone hears."""
        function = {"FunctionName": function_name}
        day = 24 * 3600
        self._add("directory-accounts-failed", "Renewing or creating WSO2's directory accounts failed (see its logs)",
                  evaluation_periods=1, datapoints_to_alarm=1, comparison_operator="GreaterThanThreshold",
                  threshold=0, treat_missing_data="notBreaching", period=day, namespace="AWS/Lambda",
                  metric_name="Errors", dimensions=function, statistic="Sum")
        self._add("directory-accounts-not-run", "WSO2's directory passwords were not renewed for a day",
                  evaluation_periods=1, datapoints_to_alarm=1, comparison_operator="LessThanThreshold",
                  threshold=1, treat_missing_data="breaching", period=day, namespace="AWS/Lambda",
                  metric_name="Invocations", dimensions=function, statistic="Sum")

    def _add(self, suffix: str, description: str, **arguments: Any) -> None:
        name = f"{self.prefix}-{suffix}"
        CloudwatchMetricAlarm(self, suffix, alarm_name=name, alarm_description=description,
                              alarm_actions=[self.topic_arn], ok_actions=[self.topic_arn], **arguments)
        self.names.append(name)

    def _error_rate(self, alb: dict[str, str], props: AlarmsProps) -> None:
        def count(query_id: str, metric_name: str) -> CloudwatchMetricAlarmMetricQuery:
            return CloudwatchMetricAlarmMetricQuery(id=query_id, metric=CloudwatchMetricAlarmMetricQueryMetric(
                namespace="AWS/ApplicationELB", metric_name=metric_name, dimensions=alb, period=60, stat="Sum"))

        self._add(
            "5xx-rate", f"More than {props.error_rate_percent}% of requests answered with 5xx",
            evaluation_periods=5, datapoints_to_alarm=3, comparison_operator="GreaterThanThreshold",
            threshold=props.error_rate_percent, treat_missing_data="notBreaching",
            metric_query=[
                count("elb5xx", "HTTPCode_ELB_5XX_Count"),
                count("target5xx", "HTTPCode_Target_5XX_Count"),
                count("requests", "RequestCount"),
                CloudwatchMetricAlarmMetricQuery(
                    id="rate", label="5xx %", return_data=True,
                    expression="100 * (FILL(elb5xx, 0) + FILL(target5xx, 0)) / FILL(requests, 1)"),
            ])
