"""Alarms on what takes the login service down, sent to one encrypted SNS topic."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import (
    CloudwatchMetricAlarm,
    CloudwatchMetricAlarmMetricQuery,
    CloudwatchMetricAlarmMetricQueryMetric,
)
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct


@dataclass(frozen=True)
class AlarmsProps:
    name_prefix: str
    kms_key_arn: str
    load_balancer_arn_suffix: str
    target_group_arn_suffix: str
    autoscaling_group_name: str
    min_healthy_hosts: int
    db_instance_identifier: str
    db_allocated_storage_gib: int
    efs_file_system_id: str
    node_metrics_namespace: str
    email: str | None = None
    # Share of requests answered 5xx (ALB or target) that pages someone.
    error_rate_percent: float = 5.0
    p99_response_seconds: float = 3.0
    cpu_percent: int = 80


class Alarms(Construct):
    """Outputs: `topic_arn`, `names` (every alarm name)."""

    def __init__(self, scope: Construct, id_: str, props: AlarmsProps):
        super().__init__(scope, id_)
        topic = SnsTopic(self, "topic", name=f"{props.name_prefix}-alarms", kms_master_key_id=props.kms_key_arn)
        self.topic_arn = topic.arn
        if props.email:
            SnsTopicSubscription(self, "email", topic_arn=topic.arn, protocol="email", endpoint=props.email)
        self.names: list[str] = []
        alb = {"LoadBalancer": props.load_balancer_arn_suffix}
        target_group = {**alb, "TargetGroup": props.target_group_arn_suffix}
        self._alarm(
            "healthy-hosts", "Fewer healthy WSO2 nodes behind the ALB than the group's minimum",
            namespace="AWS/ApplicationELB", metric_name="HealthyHostCount", dimensions=target_group,
            statistic="Minimum", comparison_operator="LessThanThreshold", threshold=props.min_healthy_hosts,
            evaluation_periods=3, treat_missing_data="breaching", props=props)
        self._error_rate(alb, props)
        self._alarm(
            "response-time-p99", f"p99 response time above {props.p99_response_seconds}s",
            namespace="AWS/ApplicationELB", metric_name="TargetResponseTime", dimensions=alb,
            extended_statistic="p99", comparison_operator="GreaterThanThreshold",
            threshold=props.p99_response_seconds, evaluation_periods=5, props=props)
        self._alarm(
            "node-cpu", f"Node CPU above {props.cpu_percent}% for 15 minutes",
            namespace="AWS/EC2", metric_name="CPUUtilization",
            dimensions={"AutoScalingGroupName": props.autoscaling_group_name}, statistic="Average",
            comparison_operator="GreaterThanThreshold", threshold=props.cpu_percent, evaluation_periods=15,
            props=props)
        self._alarm(
            "node-memory", "Node memory above 90% (JVM heap plus OS; WSO2 needs 2 GB for the OS)",
            namespace=props.node_metrics_namespace, metric_name="mem_used_percent",
            dimensions={"AutoScalingGroupName": props.autoscaling_group_name}, statistic="Maximum",
            comparison_operator="GreaterThanThreshold", threshold=90, evaluation_periods=5, props=props)
        self._alarm(
            "db-cpu", f"Database CPU above {props.cpu_percent}% for 15 minutes",
            namespace="AWS/RDS", metric_name="CPUUtilization",
            dimensions={"DBInstanceIdentifier": props.db_instance_identifier}, statistic="Average",
            comparison_operator="GreaterThanThreshold", threshold=props.cpu_percent, evaluation_periods=15,
            props=props)
        self._alarm(
            "db-free-storage", "Database free storage below 10% of the allocated size",
            namespace="AWS/RDS", metric_name="FreeStorageSpace",
            dimensions={"DBInstanceIdentifier": props.db_instance_identifier}, statistic="Minimum",
            comparison_operator="LessThanThreshold",
            threshold=props.db_allocated_storage_gib * 1024 ** 3 // 10, evaluation_periods=5, props=props)
        self._alarm(
            "efs-io-limit", "Artifact file system near its I/O limit (WSO2 deployers would stall)",
            namespace="AWS/EFS", metric_name="PercentIOLimit",
            dimensions={"FileSystemId": props.efs_file_system_id}, statistic="Maximum",
            comparison_operator="GreaterThanThreshold", threshold=90, evaluation_periods=5, props=props)

    def _alarm(self, suffix: str, description: str, *, props: AlarmsProps, evaluation_periods: int,
               comparison_operator: str, threshold: float, treat_missing_data: str = "notBreaching",
               **metric: object) -> None:
        name = f"{props.name_prefix}-{suffix}"
        CloudwatchMetricAlarm(
            self, suffix, alarm_name=name, alarm_description=description, period=60,
            evaluation_periods=evaluation_periods, datapoints_to_alarm=evaluation_periods,
            comparison_operator=comparison_operator, threshold=threshold, treat_missing_data=treat_missing_data,
            alarm_actions=[self.topic_arn], ok_actions=[self.topic_arn], **metric)  # type: ignore[arg-type]
        self.names.append(name)

    def _error_rate(self, alb: dict[str, str], props: AlarmsProps) -> None:
        def count(query_id: str, metric_name: str) -> CloudwatchMetricAlarmMetricQuery:
            return CloudwatchMetricAlarmMetricQuery(id=query_id, metric=CloudwatchMetricAlarmMetricQueryMetric(
                namespace="AWS/ApplicationELB", metric_name=metric_name, dimensions=alb, period=60, stat="Sum"))

        name = f"{props.name_prefix}-5xx-rate"
        CloudwatchMetricAlarm(
            self, "5xx-rate", alarm_name=name,
            alarm_description=f"More than {props.error_rate_percent}% of requests answered with 5xx",
            evaluation_periods=5, datapoints_to_alarm=3, comparison_operator="GreaterThanThreshold",
            threshold=props.error_rate_percent, treat_missing_data="notBreaching",
            alarm_actions=[self.topic_arn], ok_actions=[self.topic_arn],
            metric_query=[
                count("elb5xx", "HTTPCode_ELB_5XX_Count"),
                count("target5xx", "HTTPCode_Target_5XX_Count"),
                count("requests", "RequestCount"),
                CloudwatchMetricAlarmMetricQuery(
                    id="rate", label="5xx %", return_data=True,
                    expression="100 * (FILL(elb5xx, 0) + FILL(target5xx, 0)) / FILL(requests, 1)"),
            ])
        self.names.append(name)
