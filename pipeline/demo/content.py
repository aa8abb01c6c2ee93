"""What the generated records say: Vietnamese administrative-procedure results of district
offices, with their holders, numbers, dates and provisions, before they are laid out on pages.

The procedure codes in :data:`PROCEDURES` are illustrative, shaped like codes of the national
catalogue (``1.004227``); a demo catalogue must list them for validation to pass.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_AGENCY = "000.00.12.H12"


@dataclass(frozen=True)
class Procedure:
    code: str
    name: str
    level: str  # administrative level that issues the result: "huyện" (district)
    kind: str  # template key


PROCEDURES: tuple[Procedure, ...] = (
    Procedure("1.001612", "Đăng ký thành lập hộ kinh doanh", "huyện", "hkd"),
    Procedure("1.004227", "Cấp giấy phép xây dựng đối với nhà ở riêng lẻ", "huyện", "gpxd"),
    Procedure("2.000889", "Chuyển mục đích sử dụng đất phải được phép của cơ quan nhà nước có "
              "thẩm quyền đối với hộ gia đình, cá nhân", "huyện", "cmd"),
    Procedure("1.001776", "Thực hiện trợ cấp xã hội hàng tháng đối với đối tượng bảo trợ xã hội",
              "huyện", "tcxh"),
)


@dataclass(frozen=True)
class _District:
    name: str
    province: str
    id_prefix: str  # province code that starts a 12-digit citizen id
    communes: tuple[str, ...]


_DISTRICTS = (
    _District("Đông Anh", "thành phố Hà Nội", "001", (
        "xã Uy Nỗ", "xã Vân Hà", "xã Liên Hà", "xã Kim Chung", "xã Hải Bối", "xã Xuân Nộn",
        "xã Nguyên Khê", "xã Cổ Loa", "xã Mai Lâm", "xã Vĩnh Ngọc", "xã Thụy Lâm", "xã Dục Tú")),
    _District("Gia Lâm", "thành phố Hà Nội", "001", (
        "xã Bát Tràng", "xã Kim Lan", "xã Đa Tốn", "xã Dương Xá", "xã Phù Đổng", "xã Cổ Bi")),
    _District("Thủy Nguyên", "thành phố Hải Phòng", "031", (
        "xã Lập Lễ", "xã Tam Hưng", "xã Kỳ Sơn", "xã Hoa Động", "xã Thủy Triều", "xã Lưu Kiếm")),
    _District("Lạng Giang", "tỉnh Bắc Giang", "024", (
        "xã Tân Dĩnh", "xã Yên Mỹ", "xã Hương Lạc", "xã Quang Thịnh", "xã Xuân Hương")),
    _District("Yên Phong", "tỉnh Bắc Ninh", "027", (
        "xã Đông Phong", "xã Yên Trung", "xã Dũng Liệt", "xã Tam Đa", "xã Văn Môn")),
)
_VILLAGES = (
    "thôn Đông", "thôn Đoài", "thôn Thượng", "thôn Trung", "thôn Hạ", "thôn Bắc", "thôn Nam",
    "thôn Ngọc Lôi", "thôn Lỗ Khê", "thôn Đại Vĩ", "thôn Hậu Dưỡng", "xóm Mới", "thôn Cầu Cả",
)
_ROOMS = (
    "phòng khách, bếp, khu vệ sinh và cầu thang", "hai phòng ngủ, một phòng vệ sinh",
    "phòng thờ, sân phơi và phòng kho", "phòng ngủ, phòng sinh hoạt chung",
    "tum thang và bể nước mái",
)
_SURNAMES = ("Nguyễn", "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Phan", "Vũ", "Võ", "Đặng",
             "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý")
_MIDDLE_M = ("Văn", "Văn", "Đức", "Minh", "Quang", "Hữu", "Thành", "Công", "Xuân", "Đình", "Mạnh")
_MIDDLE_F = ("Thị", "Thị", "Thị Hồng", "Thị Thu", "Thị Minh", "Ngọc", "Thu", "Thị Thanh")
_GIVEN_M = ("Hùng", "Dũng", "Tuấn", "Thắng", "Cường", "Việt", "Hưng", "Lộc", "Trường", "Nghĩa",
            "Đạt", "Hiếu", "Sơn", "Hải", "Tiến", "Khải", "Quyết", "Lượng")
_GIVEN_F = ("Nhung", "Hương", "Lan", "Huệ", "Thủy", "Hằng", "Ngọc", "Trang", "Yến", "Liễu",
            "Nguyệt", "Phượng", "Tuyết", "Oanh", "Thảo", "Ánh", "Duyên", "Hạnh", "Mỹ")


@dataclass(frozen=True)
class _Person:
    name: str
    female: bool
    born: dt.date

    @property
    def title(self) -> str:
        return "Bà" if self.female else "Ông"


def _person(rng: random.Random, *, oldest: int = 1940, youngest: int = 1995) -> _Person:
    female = rng.random() < 0.5
    middle = rng.choice(_MIDDLE_F if female else _MIDDLE_M)
    given = rng.choice(_GIVEN_F if female else _GIVEN_M)
    name = f"{rng.choice(_SURNAMES)} {middle} {given}"
    born = dt.date(rng.randint(oldest, youngest), rng.randint(1, 12), rng.randint(1, 28))
    return _Person(unicodedata.normalize("NFC", name), female, born)


def _citizen_id(person: _Person, district: _District, rng: random.Random) -> str:
    # Căn cước công dân: province code, sex/century digit, year of birth, six random digits.
    century = 0 if person.born.year < 2000 else 2
    return (f"{district.id_prefix}{century + int(person.female)}{person.born.year % 100:02d}"
            f"{rng.randrange(10**6):06d}")


def _vn_date(day: dt.date) -> str:
    # Nghị định 30/2020: days below 10 and months 1-2 take a leading zero, other months do not.
    month = f"{day.month:02d}" if day.month < 3 else str(day.month)
    return f"ngày {day.day:02d} tháng {month} năm {day.year}"


def _decimal(value: float) -> str:
    # Vietnamese decimal comma; whole numbers without a fraction.
    text = f"{value:.1f}".removesuffix(".0")
    return text.replace(".", ",")


def _money(amount: int) -> str:
    return f"{amount:,}".replace(",", ".")


@dataclass
class Doc:
    """A record's content before pagination; :func:`pipeline.demo.layout.fit` lays it out on pages
    in a style."""

    agency: tuple[str, str]  # parent line (regular), issuing unit (bold)
    number: str
    place_date: str
    title: list[str]
    subtitle: str
    lead: list[tuple[str, str]]  # (kind, text), kinds as in layout._lead_rows; "?" = may be dropped
    fillers: list[str]  # hand-written provisions, used first
    filler_heading: str
    extras: list[str]  # then parametric entries (parcel corners, floors, ...), as many as needed
    extras_heading: str
    tail: list[tuple[str, str]]
    articles: bool  # number the body "Điều 1.", "Điều 2." ...
    sig_org: list[str]
    sig_title: str
    signer: str
    recipients: list[str]
    seal_text: str


@dataclass(frozen=True)
class _Holder:
    person: _Person
    citizen_id: str  # "" when the paper predates the 12-digit id
    old_id: str  # 9-digit identity card printed instead
    address: str
    commune: str
    village: str


def _id_phrase(holder: _Holder) -> str:
    if holder.citizen_id:
        return f"số định danh cá nhân {holder.citizen_id}"
    return f"chứng minh nhân dân số {holder.old_id}"


def _legal_basis_local(day: dt.date) -> str:
    if day >= dt.date(2016, 1, 1):
        return "Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015;"
    return "Căn cứ Luật Tổ chức Hội đồng nhân dân và Ủy ban nhân dân ngày 26 tháng 11 năm 2003;"


def _shuffled(rng: random.Random, items: list[str]) -> list[str]:
    out = list(items)
    rng.shuffle(out)
    return out


def _coordinates(rng: random.Random, count: int) -> list[str]:
    # Parcel corners in the national VN-2000 grid, as land documents list them.
    x, y = rng.uniform(2_330_000, 2_350_000), rng.uniform(580_000, 595_000)
    out = []
    for k in range(1, count + 1):
        step = rng.uniform(4, 25)
        heading = rng.uniform(0, 2 * math.pi)
        x, y = x + step * math.cos(heading), y + step * math.sin(heading)
        out.append(f"Điểm {k}: X = {_decimal2(x)}; Y = {_decimal2(y)}; cạnh {k}-{k + 1} dài "
                   f"{_decimal2(step)} m.")
    return out


def _decimal2(value: float) -> str:
    return f"{value:.2f}".replace(".", ",")


_VSIC = (
    ("4711", "Bán lẻ lương thực, thực phẩm, đồ uống, thuốc lá, thuốc lào chiếm tỷ trọng lớn "
     "trong các cửa hàng kinh doanh tổng hợp"),
    ("4719", "Bán lẻ khác trong các cửa hàng kinh doanh tổng hợp"),
    ("4722", "Bán lẻ thực phẩm trong các cửa hàng chuyên doanh"),
    ("4723", "Bán lẻ đồ uống trong các cửa hàng chuyên doanh"),
    ("4752", "Bán lẻ đồ ngũ kim, sơn, kính và thiết bị lắp đặt khác trong xây dựng trong các "
     "cửa hàng chuyên doanh"),
    ("4759", "Bán lẻ đồ điện gia dụng, giường, tủ, bàn, ghế và đồ nội thất tương tự"),
    ("4761", "Bán lẻ sách, báo, tạp chí, văn phòng phẩm trong các cửa hàng chuyên doanh"),
    ("4771", "Bán lẻ hàng may mặc, giày dép, hàng da và giả da trong các cửa hàng chuyên doanh"),
    ("4781", "Bán lẻ lương thực, thực phẩm, đồ uống, thuốc lá, thuốc lào lưu động hoặc tại chợ"),
    ("4542", "Bảo dưỡng và sửa chữa mô tô, xe máy"),
    ("4543", "Bán phụ tùng và các bộ phận phụ trợ của mô tô, xe máy"),
    ("5610", "Nhà hàng và các dịch vụ ăn uống phục vụ lưu động"),
    ("5630", "Dịch vụ phục vụ đồ uống"),
    ("9620", "Giặt là, làm sạch các sản phẩm dệt và lông thú"),
    ("9631", "Cắt tóc, làm đầu, gội đầu"),
    ("1071", "Sản xuất các loại bánh từ bột"),
    ("1610", "Cưa, xẻ, bào gỗ và bảo quản gỗ"),
    ("3100", "Sản xuất giường, tủ, bàn, ghế"),
    ("4933", "Vận tải hàng hóa bằng đường bộ"),
    ("8299", "Hoạt động dịch vụ hỗ trợ kinh doanh khác còn lại chưa được phân vào đâu"),
)


def _doc_hkd(rng: random.Random, d: _District, day: dt.date, h: _Holder, number: str) -> Doc:
    p = h.person
    trade = rng.choice((
        ("TẠP HÓA", "Bán lẻ lương thực, thực phẩm, đồ uống, thuốc lá, thuốc lào trong các cửa "
         "hàng kinh doanh tổng hợp"),
        ("VẬT LIỆU XÂY DỰNG", "Bán buôn vật liệu, thiết bị lắp đặt khác trong xây dựng; bán lẻ "
         "xi măng, gạch xây, ngói, đá, cát, sỏi"),
        ("QUÁN CƠM", "Nhà hàng và các dịch vụ ăn uống phục vụ lưu động; dịch vụ ăn uống khác"),
        ("SỬA CHỮA XE MÁY", "Bảo dưỡng, sửa chữa mô tô, xe máy; bán lẻ phụ tùng và các bộ phận "
         "phụ trợ của mô tô, xe máy"),
    ))
    given = p.name.split()[-1]
    shop = f"HỘ KINH DOANH {trade[0]} {given.upper()}"
    capital = rng.choice((50, 80, 100, 150, 200, 300, 500)) * 1_000_000
    holder_doc = (f"Số định danh cá nhân: {h.citizen_id}." if h.citizen_id else
                  f"Chứng minh nhân dân số: {h.old_id}, do Công an {d.province} cấp.")
    lead = [
        ("center", f"Mã số hộ kinh doanh: {d.id_prefix[1:]}H8{rng.randrange(10**6):06d}"),
        ("center_italic", f"Đăng ký lần đầu: {_vn_date(day)}"),
        ("item", f"1. Tên hộ kinh doanh: {shop}"),
        ("item", f"2. Địa điểm kinh doanh: Số {rng.randint(2, 180)}, {h.village}, {h.commune}, "
                 f"huyện {d.name}, {d.province}."),
        ("item", f"3. Ngành, nghề kinh doanh: {trade[1]}."),
        ("item", f"4. Vốn kinh doanh: {_money(capital)} đồng."),
        ("item", f"5. Số lượng lao động: {rng.randint(1, 6)} người."),
        ("item", f"6. Họ và tên đại diện hộ kinh doanh: {p.name.upper()}. "
                 f"Giới tính: {'Nữ' if p.female else 'Nam'}."),
        ("item", f"Sinh ngày: {p.born:%d/%m/%Y}. Dân tộc: Kinh. Quốc tịch: Việt Nam."),
        ("item", holder_doc),
        ("item", f"Nơi đăng ký hộ khẩu thường trú: {h.address}."),
        ("item?", f"Chỗ ở hiện tại: {h.address}."),
    ]
    fillers = [
        "Kê khai và nộp thuế đầy đủ, đúng hạn theo quy định của pháp luật về thuế; thực hiện chế "
        "độ kế toán, hóa đơn, chứng từ theo hướng dẫn của cơ quan thuế.",
        "Chỉ được hoạt động kinh doanh tại địa điểm đã đăng ký; khi thay đổi nội dung đăng ký "
        "phải thông báo với Phòng Tài chính - Kế hoạch trong thời hạn mười ngày làm việc.",
        "Bảo đảm các điều kiện về an toàn thực phẩm, phòng cháy, chữa cháy, vệ sinh môi trường và "
        "trật tự an toàn xã hội tại địa điểm kinh doanh.",
        "Không được sử dụng quá mười lao động; trường hợp sử dụng từ mười lao động trở lên phải "
        "đăng ký thành lập doanh nghiệp theo quy định của pháp luật.",
        "Treo biển hiệu tại địa điểm kinh doanh, ghi rõ tên hộ kinh doanh, địa chỉ và số điện "
        "thoại liên hệ; niêm yết giá hàng hóa, dịch vụ theo quy định.",
        "Khi tạm ngừng kinh doanh từ ba mươi ngày trở lên phải thông báo bằng văn bản cho cơ quan "
        "đăng ký kinh doanh cấp huyện và cơ quan thuế trực tiếp quản lý.",
        "Chấp hành sự kiểm tra, thanh tra của cơ quan nhà nước có thẩm quyền và báo cáo tình hình "
        "hoạt động kinh doanh khi được yêu cầu.",
        "Giữ gìn cảnh quan, không lấn chiếm vỉa hè, lòng đường, hành lang an toàn giao thông để "
        "kinh doanh hoặc để hàng hóa, phương tiện.",
        "Giấy chứng nhận này được lưu giữ tại địa điểm kinh doanh và xuất trình khi cơ quan nhà "
        "nước có thẩm quyền yêu cầu.",
    ]
    deputy = rng.random() < 0.5
    return Doc(
        agency=(f"UBND HUYỆN {d.name.upper()}", "PHÒNG TÀI CHÍNH - KẾ HOẠCH"),
        number=number, place_date=f"{d.name}, {_vn_date(day)}",
        title=["GIẤY CHỨNG NHẬN ĐĂNG KÝ HỘ KINH DOANH"], subtitle="",
        lead=lead, fillers=_shuffled(rng, fillers),
        filler_heading="Hộ kinh doanh có trách nhiệm:",
        extras=[f"Mã ngành {code}: {name}." for code, name in _shuffled(rng, list(_VSIC))]
        + [f"Kho hàng số {k}: {rng.choice(_VILLAGES)}, {rng.choice(d.communes)}, diện tích "
           f"{rng.randint(20, 90)} m2." for k in range(1, 40)],
        extras_heading="Danh mục ngành, nghề và địa điểm kinh doanh đã đăng ký:",
        tail=[], articles=False,
        sig_org=["KT. TRƯỞNG PHÒNG"] if deputy else [],
        sig_title="PHÓ TRƯỞNG PHÒNG" if deputy else "TRƯỞNG PHÒNG",
        signer=_person(rng, youngest=1985).name,
        recipients=["- Hộ kinh doanh;", "- Chi cục Thuế huyện;", f"- UBND {h.commune};",
                    "- Lưu: VT, TCKH."],
        seal_text=f"PHÒNG TÀI CHÍNH - KẾ HOẠCH ★ HUYỆN {d.name.upper()}",
    )


def _doc_gpxd(rng: random.Random, d: _District, day: dt.date, h: _Holder, number: str) -> Doc:
    p = h.person
    floors = rng.randint(2, 4)
    footprint = rng.randint(60, 140) + rng.choice((0.0, 0.5))
    designer = _person(rng, youngest=1988).name
    firm = rng.choice(("An Phát", "Hưng Thịnh", "Đức Minh", "Thành Công", "Việt Á", "Trường Sơn"))
    cert_day = day - dt.timedelta(days=rng.randint(400, 4000))
    lead = [
        ("item", f"1. Cấp cho: {p.title} {p.name}, {_id_phrase(h)}."),
        ("item", f"Địa chỉ: {h.address}."),
        ("item", "2. Được phép xây dựng công trình: Nhà ở riêng lẻ."),
        ("item", f"- Theo hồ sơ thiết kế do Công ty TNHH Tư vấn thiết kế xây dựng {firm} lập; "
                 f"chủ nhiệm thiết kế: kiến trúc sư {designer}."),
        ("item", f"- Vị trí xây dựng: thửa đất số {rng.randint(10, 899)}, tờ bản đồ số "
                 f"{rng.randint(1, 60)}, {h.village}, {h.commune}, huyện {d.name}, {d.province}."),
        ("item?", f"- Cốt nền xây dựng công trình: +0,{rng.randint(30, 60)} m so với cốt mặt "
                 "đường hiện trạng."),
        ("item?", f"- Mật độ xây dựng: {rng.randint(60, 90)}%. Hệ số sử dụng đất: "
                 f"{_decimal(rng.randint(18, 36) / 10)}."),
        ("item", f"- Diện tích xây dựng tầng 1: {_decimal(footprint)} m2. Tổng diện tích sàn: "
                 f"{_decimal(footprint * floors)} m2."),
        ("item", f"- Chiều cao công trình: {_decimal(floors * 3.6 + 1.2)} m; số tầng: {floors} "
                 "tầng."),
        ("item", f"3. Giấy tờ về quyền sử dụng đất: Giấy chứng nhận quyền sử dụng đất số "
                 f"{rng.choice('ABC')}{rng.choice('ĐKLMN')} {rng.randrange(10**6):06d} do UBND "
                 f"huyện {d.name} cấp {_vn_date(cert_day)}."),
    ]
    fillers = [
        "Chịu trách nhiệm trước pháp luật nếu xâm phạm các quyền hợp pháp của các chủ sở hữu "
        "liền kề; bồi thường thiệt hại cho công trình lân cận do thi công gây ra.",
        "Thực hiện đúng các quy định của pháp luật về đất đai, về đầu tư xây dựng và nội dung "
        "Giấy phép xây dựng này.",
        f"Thông báo bằng văn bản về ngày khởi công cho cơ quan cấp phép và Ủy ban nhân dân "
        f"{h.commune} trước khi khởi công xây dựng công trình.",
        "Khi điều chỉnh thiết kế làm thay đổi vị trí, diện tích, chiều cao hoặc số tầng của công "
        "trình thì phải đề nghị điều chỉnh giấy phép và chờ quyết định của cơ quan cấp phép.",
        "Bảo đảm an toàn lao động, vệ sinh môi trường, phòng chống cháy nổ trong quá trình thi "
        "công; che chắn công trình, không để vật liệu xây dựng lấn chiếm lòng đường, vỉa hè.",
        "Xuất trình Giấy phép xây dựng khi cơ quan có thẩm quyền kiểm tra; treo biển báo tại "
        "công trường trong suốt thời gian thi công.",
        "Thực hiện việc đấu nối hạ tầng kỹ thuật, thoát nước mưa, nước thải theo hướng dẫn của "
        "Ủy ban nhân dân xã và đơn vị quản lý hạ tầng.",
        "Hoàn thành công trình và báo cáo cơ quan cấp phép để kiểm tra, cập nhật vào hồ sơ quản "
        "lý trật tự xây dựng của địa phương.",
    ]
    tail = [("item", "4. Giấy phép này có hiệu lực khởi công xây dựng trong thời hạn 12 tháng kể "
                     "từ ngày cấp; quá thời hạn trên thì phải đề nghị gia hạn giấy phép xây dựng.")]
    return Doc(
        agency=("ỦY BAN NHÂN DÂN", f"HUYỆN {d.name.upper()}"),
        number=number, place_date=f"{d.name}, {_vn_date(day)}",
        title=["GIẤY PHÉP XÂY DỰNG"], subtitle="Sử dụng cho nhà ở riêng lẻ",
        lead=lead, fillers=_shuffled(rng, fillers),
        filler_heading="Chủ đầu tư phải thực hiện các nội dung sau:",
        extras=[
            f"Tầng {k}: diện tích sàn {_decimal(footprint)} m2, chiều cao tầng "
            f"{_decimal(rng.choice((3.3, 3.6, 3.9)))} m; bố trí {rooms}."
            for k, rooms in zip(range(1, floors + 1), _shuffled(rng, _ROOMS), strict=False)
        ] + _coordinates(rng, 60),
        extras_heading="Quy mô các tầng và tọa độ mốc giới thửa đất (hệ VN-2000):",
        tail=tail, articles=False,
        sig_org=["KT. CHỦ TỊCH"], sig_title="PHÓ CHỦ TỊCH",
        signer=_person(rng, youngest=1980).name,
        recipients=["- Như trên;", f"- UBND {h.commune};", "- Đội Quản lý trật tự xây dựng;",
                    "- Lưu: VT, KTHT."],
        seal_text=f"ỦY BAN NHÂN DÂN HUYỆN {d.name.upper()} ★ {d.province.upper()}",
    )


def _doc_cmd(rng: random.Random, d: _District, day: dt.date, h: _Holder, number: str) -> Doc:
    p = h.person
    area = f"{rng.randint(40, 250)},{rng.randint(0, 9)}"
    land_basis = (
        ["Căn cứ Luật Đất đai ngày 29 tháng 11 năm 2013;",
         "Căn cứ Nghị định số 43/2014/NĐ-CP ngày 15 tháng 5 năm 2014 của Chính phủ quy định chi "
         "tiết thi hành một số điều của Luật Đất đai;"]
        if day >= dt.date(2014, 7, 1) else
        ["Căn cứ Luật Đất đai ngày 26 tháng 11 năm 2003;",
         "Căn cứ Nghị định số 181/2004/NĐ-CP ngày 29 tháng 10 năm 2004 của Chính phủ về thi hành "
         "Luật Đất đai;"]
    )
    memo_day = day - dt.timedelta(days=rng.randint(5, 40))
    lead = [
        ("center_bold", f"ỦY BAN NHÂN DÂN HUYỆN {d.name.upper()}"),
        ("basis", _legal_basis_local(day)),
        ("basis", land_basis[0]),
        ("basis?", land_basis[1]),
        ("basis", f"Xét đơn đề nghị của {p.title.lower()} {p.name} và đề nghị của Trưởng phòng "
                  f"Tài nguyên và Môi trường tại Tờ trình số {rng.randint(20, 900)}/TTr-TNMT "
                  f"ngày {memo_day:%d/%m/%Y},"),
        ("center_bold", "QUYẾT ĐỊNH:"),
        ("article", f"Cho phép {p.title.lower()} {p.name}, {_id_phrase(h)}, thường trú tại "
                    f"{h.address}, được chuyển mục đích sử dụng {area} m2 đất từ đất trồng cây "
                    f"hàng năm khác sang đất ở tại nông thôn tại thửa đất số "
                    f"{rng.randint(10, 899)}, tờ bản đồ số {rng.randint(1, 60)}, {h.village}, "
                    f"{h.commune}, huyện {d.name}."),
        ("item", "- Mục đích sử dụng đất: Đất ở tại nông thôn."),
        ("item?", "- Thời hạn sử dụng đất: Lâu dài."),
        ("item?", "- Hình thức sử dụng đất: Nhà nước giao đất có thu tiền sử dụng đất."),
    ]
    fillers = [
        "Giao Phòng Tài nguyên và Môi trường chỉnh lý hồ sơ địa chính, cập nhật biến động đất "
        "đai và hướng dẫn người sử dụng đất thực hiện các thủ tục theo quy định.",
        "Giao Chi cục Thuế huyện xác định và thông báo số tiền sử dụng đất, lệ phí trước bạ mà "
        "người sử dụng đất phải nộp theo quy định của pháp luật.",
        f"{p.title} {p.name} có trách nhiệm nộp tiền sử dụng đất, lệ phí trước bạ theo thông báo "
        "của cơ quan thuế và sử dụng đất đúng mục đích, đúng ranh giới đã được xác định.",
        f"Ủy ban nhân dân {h.commune} có trách nhiệm xác định ranh giới, mốc giới thửa đất trên "
        "thực địa và quản lý chặt chẽ việc sử dụng đất theo quy định.",
        f"Văn phòng đăng ký đất đai chi nhánh huyện {d.name} cấp Giấy chứng nhận quyền sử dụng "
        "đất sau khi người sử dụng đất hoàn thành nghĩa vụ tài chính.",
        "Trường hợp người sử dụng đất không thực hiện nghĩa vụ tài chính trong thời hạn quy định "
        "thì bị xử lý theo quy định của pháp luật về quản lý thuế.",
        "Việc xây dựng công trình trên thửa đất phải tuân thủ quy hoạch chi tiết và được cấp giấy "
        "phép xây dựng theo quy định.",
    ]
    tail = [
        ("article", "Quyết định này có hiệu lực kể từ ngày ký."),
        ("article", f"Chánh Văn phòng HĐND và UBND huyện, Trưởng phòng Tài nguyên và Môi trường, "
                    f"Chi cục trưởng Chi cục Thuế huyện, Chủ tịch UBND {h.commune}, "
                    f"{p.title.lower()} {p.name} và các cơ quan, đơn vị có liên quan chịu trách "
                    "nhiệm thi hành Quyết định này./."),
    ]
    return Doc(
        agency=("ỦY BAN NHÂN DÂN", f"HUYỆN {d.name.upper()}"),
        number=number, place_date=f"{d.name}, {_vn_date(day)}",
        title=["QUYẾT ĐỊNH"], subtitle="Về việc cho phép chuyển mục đích sử dụng đất",
        lead=lead, fillers=_shuffled(rng, fillers), filler_heading="",
        extras=_coordinates(rng, 80),
        extras_heading="Ranh giới, mốc giới thửa đất được xác định theo hệ tọa độ VN-2000 như "
        "sau:",
        tail=tail, articles=True,
        sig_org=["TM. ỦY BAN NHÂN DÂN"], sig_title="CHỦ TỊCH",
        signer=_person(rng, youngest=1980).name,
        recipients=["- Như Điều {last};", "- Chi cục Thuế huyện;", "- VP đăng ký đất đai;",
                    "- Lưu: VT, TNMT."],
        seal_text=f"ỦY BAN NHÂN DÂN HUYỆN {d.name.upper()} ★ {d.province.upper()}",
    )


def _beneficiary(rng: random.Random, k: int, d: _District, levels: Sequence[int]) -> str:
    person = _person(rng, oldest=1925, youngest=2004)
    amount = _money(rng.choice(levels) * 1000)
    return (f"{k}. {person.title} {person.name}, sinh năm {person.born.year}, "
            f"{rng.choice(_VILLAGES)}, {rng.choice(d.communes)}; mức trợ cấp {amount} "
            "đồng/tháng.")


def _doc_tcxh(rng: random.Random, d: _District, day: dt.date, h: _Holder, number: str) -> Doc:
    p = h.person
    if day >= dt.date(2021, 7, 1):
        decree = ("Căn cứ Nghị định số 20/2021/NĐ-CP ngày 15 tháng 3 năm 2021 của Chính phủ quy "
                  "định chính sách trợ giúp xã hội đối với đối tượng bảo trợ xã hội;")
    elif day >= dt.date(2014, 1, 1):
        decree = ("Căn cứ Nghị định số 136/2013/NĐ-CP ngày 21 tháng 10 năm 2013 của Chính phủ quy "
                  "định chính sách trợ giúp xã hội đối với đối tượng bảo trợ xã hội;")
    elif day >= dt.date(2007, 5, 1):
        decree = ("Căn cứ Nghị định số 67/2007/NĐ-CP ngày 13 tháng 4 năm 2007 của Chính phủ về "
                  "chính sách trợ giúp các đối tượng bảo trợ xã hội;")
    else:
        decree = ("Căn cứ Nghị định số 07/2000/NĐ-CP ngày 09 tháng 3 năm 2000 của Chính phủ về "
                  "chính sách cứu trợ xã hội;")
    memo_day = day - dt.timedelta(days=rng.randint(5, 30))
    start = day + dt.timedelta(days=20)
    # Monthly allowances in thousand đồng, which rose with the base level over the years.
    levels = (270, 360, 405, 540) if day >= dt.date(2014, 1, 1) else (120, 180, 240, 360)
    lead = [
        ("center_bold", f"CHỦ TỊCH ỦY BAN NHÂN DÂN HUYỆN {d.name.upper()}"),
        ("basis", _legal_basis_local(day)),
        ("basis", decree),
        ("basis", f"Xét đề nghị của Trưởng phòng Lao động - Thương binh và Xã hội tại Tờ trình "
                  f"số {rng.randint(20, 900)}/TTr-LĐTBXH ngày {memo_day:%d/%m/%Y},"),
        ("center_bold", "QUYẾT ĐỊNH:"),
        ("article", f"Trợ cấp xã hội hàng tháng đối với {p.title.lower()} {p.name}, sinh ngày "
                    f"{p.born:%d/%m/%Y}, {_id_phrase(h)}, thường trú tại {h.address}."),
        ("item", f"- Mức trợ cấp hàng tháng: {_money(rng.choice(levels) * 1000)} đồng."),
        ("item?", f"- Thời điểm được hưởng: từ tháng {start.month} năm {start.year}."),
    ]
    fillers = [
        f"Giao Phòng Lao động - Thương binh và Xã hội phối hợp với Ủy ban nhân dân {h.commune} "
        "hướng dẫn, theo dõi và chi trả trợ cấp hàng tháng cho đối tượng đúng quy định.",
        f"Ủy ban nhân dân {h.commune} có trách nhiệm quản lý đối tượng, kịp thời báo cáo khi đối "
        "tượng thay đổi nơi cư trú, không còn đủ điều kiện hưởng hoặc qua đời.",
        "Kinh phí thực hiện trợ cấp được bố trí trong dự toán ngân sách hằng năm của huyện theo "
        "phân cấp quản lý ngân sách hiện hành.",
        "Đối tượng được cấp thẻ bảo hiểm y tế theo quy định của pháp luật về bảo hiểm y tế kể từ "
        "tháng được hưởng trợ cấp xã hội hàng tháng.",
        "Khi đối tượng qua đời, người tổ chức mai táng được hỗ trợ chi phí mai táng theo mức quy "
        "định tại thời điểm phát sinh.",
        "Phòng Tài chính - Kế hoạch có trách nhiệm thẩm định, cấp phát kinh phí chi trả trợ cấp "
        "kịp thời, đúng đối tượng, đúng chế độ.",
    ]
    tail = [
        ("article", "Quyết định này có hiệu lực kể từ ngày ký."),
        ("article", f"Chánh Văn phòng HĐND và UBND huyện, Trưởng phòng Lao động - Thương binh và "
                    f"Xã hội, Trưởng phòng Tài chính - Kế hoạch, Chủ tịch UBND {h.commune} và "
                    f"{p.title.lower()} {p.name} chịu trách nhiệm thi hành Quyết định này./."),
    ]
    return Doc(
        agency=("ỦY BAN NHÂN DÂN", f"HUYỆN {d.name.upper()}"),
        number=number, place_date=f"{d.name}, {_vn_date(day)}",
        title=["QUYẾT ĐỊNH"], subtitle="Về việc trợ cấp xã hội hàng tháng",
        lead=lead, fillers=_shuffled(rng, fillers), filler_heading="",
        extras=[_beneficiary(rng, k, d, levels) for k in range(1, 60)],
        extras_heading="Phê duyệt danh sách đối tượng được hưởng trợ cấp xã hội hàng tháng cùng "
        "đợt như sau:",
        tail=tail, articles=True,
        sig_org=["KT. CHỦ TỊCH"], sig_title="PHÓ CHỦ TỊCH",
        signer=_person(rng, youngest=1980).name,
        recipients=["- Như Điều {last};", "- Phòng LĐ-TB&XH;", "- Lưu: VT."],
        seal_text=f"ỦY BAN NHÂN DÂN HUYỆN {d.name.upper()} ★ {d.province.upper()}",
    )


_TEMPLATES: dict[str, tuple[str, Callable[..., Doc]]] = {
    # kind -> (result-number symbol, builder)
    "hkd": ("GCN-TCKH", _doc_hkd),
    "gpxd": ("GPXD", _doc_gpxd),
    "cmd": ("QĐ-UBND", _doc_cmd),
    "tcxh": ("QĐ-UBND", _doc_tcxh),
}


@dataclass(frozen=True)
class Content:
    """One record: its procedure, number, date and holder, and the document that says so."""

    procedure: Procedure
    result_number: str
    issued_on: dt.date
    holder: _Holder
    doc: Doc


def record_content(rng: random.Random, agency_code: str, procedure: Procedure, with_id: bool,
                   issued_on: dt.date | None = None) -> Content:
    """A record of ``procedure`` issued by the district office ``agency_code`` stands for, on
    ``issued_on`` (default: a day of 2005-2021); ``with_id``: its holder has a 12-digit id."""
    district = _district(agency_code)
    if issued_on is None:
        issued_on = dt.date(2005, 1, 1) + dt.timedelta(days=rng.randrange(6209))
    person = _person(rng)
    commune = rng.choice(district.communes)
    village = rng.choice(_VILLAGES)
    holder = _Holder(
        person=person,
        citizen_id=_citizen_id(person, district, rng) if with_id else "",
        old_id=f"{rng.randint(10, 19):02d}{rng.randrange(10**7):07d}",
        address=f"{village}, {commune}, huyện {district.name}, {district.province}",
        commune=commune, village=village,
    )
    symbol, builder = _TEMPLATES[procedure.kind]
    number = f"{rng.randint(1, 2999)}/{symbol}"
    doc = builder(rng, district, issued_on, holder, number)
    return Content(procedure, number, issued_on, holder, doc)


def _district(agency_code: str) -> _District:
    if agency_code == DEFAULT_AGENCY:
        return _DISTRICTS[0]
    return _DISTRICTS[zlib.crc32(agency_code.encode()) % len(_DISTRICTS)]
